"""Trials of one run for many budgets: a branch names its trunk, and the tokens it took from
the trunk's checkpoint.

`parent` is the hash of the trunk a branch started from (the cooldown of a smaller budget
branched off the largest budget's run, orchestrator.branches); `shared_tokens` the tokens of
the trunk's run it started from, which the trunk trained and the study's compute counts once.
Both are null for every trial trained on its own, so a store from before reads as it did.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        count = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
        batch.add_column(sa.Column("parent", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("shared_tokens", count, nullable=True))


def downgrade() -> None:
    # As 0005: on SQLite, dropping a column rebuilds `trials` and would cascade to every metric
    # and result; the two columns stay there, unread by the older tool.
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table("trials") as batch:
            batch.drop_column("shared_tokens")
            batch.drop_column("parent")

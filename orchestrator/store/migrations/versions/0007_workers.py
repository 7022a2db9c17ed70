"""Trials that span several workers: how many processes a trial trained on, and how they
shared the model.

`workers` is the number of Ray Train workers (processes) a trial trained on, `strategy` how
they shared the model ("ddp"). Both are null for a trial trained in one process, as every trial
before this revision was, so a store from before reads as it did.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("workers", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("strategy", sa.String(length=10), nullable=True))


def downgrade() -> None:
    # As 0005: on SQLite, dropping a column rebuilds `trials` and would cascade to every metric
    # and result; the two columns stay there, unread by the older tool.
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table("trials") as batch:
            batch.drop_column("strategy")
            batch.drop_column("workers")

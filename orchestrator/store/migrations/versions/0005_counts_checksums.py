"""Counts of tokens and parameters take 64 bits on every database; trials keep the size and
checksum of their final weights.

PostgreSQL's INTEGER has 32 bits, so a trial of 2^31 tokens or more could not be stored there
although SQLite, whose INTEGER has 64, took it. On PostgreSQL these columns become BIGINT; on
SQLite they stay. `checkpoint_bytes` and `checkpoint_sha256` are final.pt as the trainer wrote
and read it back (null for trials finished before), so that a file gone or broken is told.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COUNTS = {
    "trials": ["n_params", "total_params", "tokens", "flops_per_token", "tokens_done",
               "tokens_scored"],
    "metrics": ["tokens"],
    "evals": ["tokens"],
    "predictions": ["n_params", "tokens"],
}  # fmt: skip


def _retype(old, new) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # 64 bits already
    for table, columns in COUNTS.items():
        for column in columns:
            op.alter_column(table, column, type_=new, existing_type=old)


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())
    with op.batch_alter_table("trials") as batch:
        count = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
        batch.add_column(sa.Column("checkpoint_bytes", count, nullable=True))
        batch.add_column(sa.Column("checkpoint_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # On SQLite, dropping a column rebuilds the table, and with foreign keys on (as the store
    # opens) dropping the old `trials` would cascade to every metric and result: the two
    # columns stay there, unread by the older tool.
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table("trials") as batch:
            batch.drop_column("checkpoint_sha256")
            batch.drop_column("checkpoint_bytes")
    _retype(sa.BigInteger(), sa.Integer())

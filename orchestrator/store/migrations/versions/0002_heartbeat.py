"""Trials carry a heartbeat; the schema version moves from `schema_info` to alembic's table.

The driver refreshes `heartbeat_at` of its running trials while it lives, so a reader of a store
on a database server (where no file lock tells) sees that a trial whose heartbeat stopped was
left by a driver that died.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    op.drop_table("schema_info")


def downgrade() -> None:
    schema_info = op.create_table(
        "schema_info",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_schema_info")),
    )
    op.bulk_insert(schema_info, [{"version": 4}])
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("heartbeat_at")

"""Baseline: the schema of release 0.1, which recorded itself as `schema_info` version 4.

Stores of that release are stamped at this revision by `study upgrade` and migrated from here;
new stores are created at the latest revision directly. So this revision has nothing to do.

Revision ID: 0001
Revises:
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # a marker: the tables already exist as release 0.1 made them


def downgrade() -> None:
    pass

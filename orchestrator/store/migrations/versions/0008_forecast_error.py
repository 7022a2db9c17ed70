"""A prediction's error in the backtest's convention: forecast / measured − 1 (positive: the
forecast was too high), as every backtest row already states it. Before, a verified
prediction's error was (measured − forecast) / forecast, of the opposite sign, so the report
showed the two conventions side by side. Only verified predictions change.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_VERIFIED = "measured_loss IS NOT NULL AND measured_loss > 0"


def upgrade() -> None:
    op.execute(sa.text(f"UPDATE predictions SET error = predicted_loss / measured_loss - 1 "
                       f"WHERE {_VERIFIED}"))  # fmt: skip


def downgrade() -> None:
    op.execute(sa.text(f"UPDATE predictions SET error = (measured_loss - predicted_loss) / "
                       f"predicted_loss WHERE {_VERIFIED}"))  # fmt: skip

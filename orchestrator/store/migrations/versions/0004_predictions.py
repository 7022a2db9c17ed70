"""Predictions: a loss predicted at a compute budget beyond the grid, kept before the trial that
verifies it trains, and the loss that trial measured.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("architecture", sa.String(length=40), nullable=False),
        sa.Column("flops", sa.Double(), nullable=False),
        sa.Column("n_opt", sa.Double(), nullable=False),
        sa.Column("n_opt_from", sa.String(length=40), nullable=False),
        sa.Column("trial_id", sa.String(length=200), nullable=False),
        sa.Column("trial_hash", sa.String(length=64), nullable=False),
        sa.Column("cell", sa.JSON(), nullable=False),
        sa.Column("n_params", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("predicted_loss", sa.Double(), nullable=False),
        sa.Column("ci_low", sa.Double(), nullable=True),
        sa.Column("ci_high", sa.Double(), nullable=True),
        sa.Column("fit", sa.JSON(), nullable=False),
        sa.Column("measured_loss", sa.Double(), nullable=True),
        sa.Column("error", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_predictions_study_id_studies"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint(
            "study_id", "architecture", "flops", "trial_hash", name=op.f("uq_predictions_study_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("predictions")

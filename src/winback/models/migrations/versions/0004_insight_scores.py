"""insight columns on customer scores (reasons, personas, health, propensity, priorities)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = [
    ('value_tier', sa.String(length=8)),
    ('reason_confidence', sa.Float()),
    ('reason_evidence', sa.Text()),
    ('requested_features', sa.Text()),
    ('persona', sa.String(length=32)),
    ('health_score', sa.Float()),
    ('health_band', sa.String(length=16)),
    ('health_factors', sa.Text()),
    ('churn_risk', sa.Float()),
    ('p_return', sa.Float()),
    ('value_after_return_minor', sa.BigInteger()),
    ('recoverable_value_minor', sa.BigInteger()),
    ('priority_rank', sa.Integer()),
    ('suggested_channel', sa.String(length=16)),
]


def upgrade() -> None:
    with op.batch_alter_table('customer_scores') as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.create_index(batch.f('ix_customer_scores_priority_rank'), ['priority_rank'], unique=False)
    with op.batch_alter_table('analysis_runs') as batch:
        batch.add_column(sa.Column('insights', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('analysis_runs') as batch:
        batch.drop_column('insights')
    with op.batch_alter_table('customer_scores') as batch:
        batch.drop_index(batch.f('ix_customer_scores_priority_rank'))
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)

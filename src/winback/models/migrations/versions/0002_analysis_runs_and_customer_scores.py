"""analysis runs and customer scores

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('analysis_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('observation_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('customers_scored', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('report_path', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analysis_runs'))
    )
    op.create_table('customer_scores',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('analysis_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('churned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('churn_reason', sa.String(length=32), nullable=True),
    sa.Column('involuntary', sa.Boolean(), nullable=True),
    sa.Column('tenure_days', sa.Integer(), nullable=True),
    sa.Column('mrr_minor', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('recency_days', sa.Integer(), nullable=True),
    sa.Column('frequency', sa.Integer(), nullable=True),
    sa.Column('monetary_minor', sa.BigInteger(), nullable=True),
    sa.Column('r_score', sa.Integer(), nullable=True),
    sa.Column('f_score', sa.Integer(), nullable=True),
    sa.Column('m_score', sa.Integer(), nullable=True),
    sa.Column('rfm_segment', sa.String(length=32), nullable=True),
    sa.Column('p_alive', sa.Float(), nullable=True),
    sa.Column('expected_purchases_12m', sa.Float(), nullable=True),
    sa.Column('expected_clv_12m_minor', sa.BigInteger(), nullable=True),
    sa.Column('historical_clv_minor', sa.BigInteger(), nullable=True),
    sa.Column('lost_value_minor', sa.BigInteger(), nullable=True),
    sa.Column('lost_value_rank', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['analysis_id'], ['analysis_runs.id'], name=op.f('fk_customer_scores_analysis_id_analysis_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_scores_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_scores'))
    )
    with op.batch_alter_table('customer_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_scores_analysis_id'), ['analysis_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('customer_scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_scores_analysis_id'))

    op.drop_table('customer_scores')
    op.drop_table('analysis_runs')
    

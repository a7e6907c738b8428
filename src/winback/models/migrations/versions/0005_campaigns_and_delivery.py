"""playbooks, campaigns, enrollments, coupons, customer events and the delivery outbox

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('sequence', sa.String(length=64), nullable=False),
    sa.Column('playbook_name', sa.String(length=64), nullable=False),
    sa.Column('playbook_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('holdout_share', sa.Float(), nullable=False),
    sa.Column('budget_minor', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('committed_cost_minor', sa.BigInteger(), nullable=False),
    sa.Column('spec', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('key', name=op.f('uq_campaigns_key'))
    )
    op.create_table('playbook_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_playbook_versions')),
    sa.UniqueConstraint('name', 'version', name='uq_playbook_versions_name_version')
    )
    op.create_table('send_counters',
    sa.Column('scope', sa.String(length=255), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'window_start', name=op.f('pk_send_counters'))
    )
    op.create_table('coupons',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('offer_key', sa.String(length=64), nullable=False),
    sa.Column('offer_kind', sa.String(length=32), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('value_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replaced_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_coupons_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_coupons_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['replaced_by_id'], ['coupons.id'], name=op.f('fk_coupons_replaced_by_id_coupons'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code'))
    )
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.create_index('ix_coupons_customer_id_status', ['customer_id', 'status'], unique=False)

    op.create_table('customer_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('properties', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_events_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_customer_events_event_id'))
    )
    with op.batch_alter_table('customer_events', schema=None) as batch_op:
        batch_op.create_index('ix_customer_events_customer_id_type', ['customer_id', 'type'], unique=False)
        batch_op.create_index('ix_customer_events_type_occurred_at', ['type', 'occurred_at'], unique=False)

    op.create_table('suppressions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_suppressions_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('address', 'scope', name='uq_suppressions_address_scope')
    )
    op.create_table('enrollments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('trigger', sa.String(length=128), nullable=False),
    sa.Column('arm', sa.String(length=16), nullable=False),
    sa.Column('variants', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('exit_reason', sa.String(length=64), nullable=True),
    sa.Column('locale', sa.String(length=35), nullable=True),
    sa.Column('strategy', sa.String(length=64), nullable=True),
    sa.Column('offer_key', sa.String(length=64), nullable=True),
    sa.Column('offer_cost_minor', sa.BigInteger(), nullable=True),
    sa.Column('expected_gain_minor', sa.BigInteger(), nullable=True),
    sa.Column('coupon_id', sa.Integer(), nullable=True),
    sa.Column('decision', sa.Text(), nullable=True),
    sa.Column('context', sa.Text(), nullable=True),
    sa.Column('playbook_version', sa.Integer(), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_step', sa.Integer(), nullable=False),
    sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_enrollments_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_enrollments_coupon_id_coupons'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_enrollments_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollments')),
    sa.UniqueConstraint('campaign_id', 'dedupe_key', name='uq_enrollments_campaign_id_dedupe_key')
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index('ix_enrollments_customer_id', ['customer_id'], unique=False)
        batch_op.create_index('ix_enrollments_status_next_due_at', ['status', 'next_due_at'], unique=False)

    op.create_table('outbox_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('step', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=True),
    sa.Column('locale', sa.String(length=35), nullable=True),
    sa.Column('to_address', sa.String(length=320), nullable=True),
    sa.Column('from_address', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('text_body', sa.Text(), nullable=True),
    sa.Column('html_body', sa.Text(), nullable=True),
    sa.Column('headers', sa.Text(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_outbox_messages_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_outbox_messages_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_outbox_messages_enrollment_id_enrollments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_messages')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outbox_messages_idempotency_key')),
    sa.UniqueConstraint('message_id', name=op.f('uq_outbox_messages_message_id'))
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_messages_customer_id_sent_at', ['customer_id', 'sent_at'], unique=False)
        batch_op.create_index('ix_outbox_messages_enrollment_id', ['enrollment_id'], unique=False)
        batch_op.create_index('ix_outbox_messages_status_due_at', ['status', 'due_at'], unique=False)

    op.create_table('call_tasks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_call_tasks_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_call_tasks_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox_messages.id'], name=op.f('fk_call_tasks_outbox_id_outbox_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_tasks')),
    sa.UniqueConstraint('outbox_id', name=op.f('uq_call_tasks_outbox_id'))
    )
    with op.batch_alter_table('call_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_tasks_customer_id'), ['customer_id'], unique=False)

    op.create_table('delivery_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('code', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['outbox_messages.id'], name=op.f('fk_delivery_attempts_message_id_outbox_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts'))
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_attempts_message_id'), ['message_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_attempts_message_id'))

    op.drop_table('delivery_attempts')
    with op.batch_alter_table('call_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_tasks_customer_id'))

    op.drop_table('call_tasks')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_status_due_at')
        batch_op.drop_index('ix_outbox_messages_enrollment_id')
        batch_op.drop_index('ix_outbox_messages_customer_id_sent_at')

    op.drop_table('outbox_messages')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_status_next_due_at')
        batch_op.drop_index('ix_enrollments_customer_id')

    op.drop_table('enrollments')
    op.drop_table('suppressions')
    with op.batch_alter_table('customer_events', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_events_type_occurred_at')
        batch_op.drop_index('ix_customer_events_customer_id_type')

    op.drop_table('customer_events')
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_coupons_customer_id_status')

    op.drop_table('coupons')
    op.drop_table('send_counters')
    op.drop_table('playbook_versions')
    op.drop_table('campaigns')

"""billing: price books, ledger, holds, charges, limits, invoices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 01:55:10.977997
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lightgrid.store.base import MoneyColumn, UTCDateTime

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _money() -> MoneyColumn:
    return MoneyColumn()  # integer millionths; see lightgrid.store.base


def _utc() -> UTCDateTime:
    return UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('billing_reviews',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('usage', sa.JSON(), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('resolved_at', _utc(), nullable=True),
    sa.Column('charge_id', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_reviews')),
    sa.UniqueConstraint('key', name=op.f('uq_billing_reviews_key'))
    )
    with op.batch_alter_table('billing_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_reviews_project'), ['project'], unique=False)

    op.create_table('billing_whitelist',
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('expires_at', _utc(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.PrimaryKeyConstraint('project', name=op.f('pk_billing_whitelist'))
    )
    op.create_table('charges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=True),
    sa.Column('partition', sa.String(length=64), nullable=False),
    sa.Column('qos', sa.String(length=64), nullable=True),
    sa.Column('gpu_type', sa.String(length=32), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('cpus', sa.Integer(), nullable=False),
    sa.Column('mem', sa.Integer(), nullable=False),
    sa.Column('gpus', sa.Integer(), nullable=False),
    sa.Column('nodes', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Integer(), nullable=False),
    sa.Column('amount', _money(), nullable=False),
    sa.Column('from_hold', _money(), nullable=False),
    sa.Column('from_funds', _money(), nullable=False),
    sa.Column('to_receivable', _money(), nullable=False),
    sa.Column('released', _money(), nullable=False),
    sa.Column('core_hours', _money(), nullable=False),
    sa.Column('gpu_hours', _money(), nullable=False),
    sa.Column('price_version', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('contract_id', sa.String(length=36), nullable=True),
    sa.Column('started_at', _utc(), nullable=True),
    sa.Column('ended_at', _utc(), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('transaction_id', sa.String(length=36), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charges')),
    sa.UniqueConstraint('key', name=op.f('uq_charges_key'))
    )
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charges_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_charges_project_created', ['project', 'created_at'], unique=False)

    op.create_table('contracts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('org', sa.String(length=64), nullable=False),
    sa.Column('effective_from', _utc(), nullable=False),
    sa.Column('effective_until', _utc(), nullable=True),
    sa.Column('discount', _money(), nullable=True),
    sa.Column('cards', sa.JSON(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contracts'))
    )
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contracts_org'), ['org'], unique=False)

    op.create_table('funds_limits',
    sa.Column('owner', sa.String(length=80), nullable=False),
    sa.Column('threshold', _money(), nullable=False),
    sa.Column('credit_limit', _money(), nullable=False),
    sa.PrimaryKeyConstraint('owner', name=op.f('pk_funds_limits'))
    )
    op.create_table('invoices',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('owner', sa.String(length=80), nullable=False),
    sa.Column('amount', _money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', _utc(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=True),
    sa.Column('issued_by', sa.String(length=64), nullable=True),
    sa.Column('issued_at', _utc(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('number', name=op.f('uq_invoices_number'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_owner'), ['owner'], unique=False)

    op.create_table('ledger_balances',
    sa.Column('account', sa.String(length=140), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('balance', _money(), nullable=False),
    sa.PrimaryKeyConstraint('account', name=op.f('pk_ledger_balances'))
    )
    op.create_table('ledger_transactions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('memo', sa.String(length=500), nullable=False),
    sa.Column('refs', sa.JSON(), nullable=False),
    sa.Column('receipt', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transactions')),
    sa.UniqueConstraint('receipt', name=op.f('uq_ledger_transactions_receipt'))
    )
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_transactions_created_at'), ['created_at'],
                              unique=False)

    op.create_table('price_book_versions',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('effective_from', _utc(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_price_book_versions')),
    sa.UniqueConstraint('effective_from', name=op.f('uq_price_book_versions_effective_from'))
    )
    op.create_table('quota_grants',
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('granted', _money(), nullable=False),
    sa.Column('used', _money(), nullable=False),
    sa.Column('held', _money(), nullable=False),
    sa.PrimaryKeyConstraint('project', 'kind', name=op.f('pk_quota_grants'))
    )
    op.create_table('spending_caps',
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('limit', _money(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('project', 'user', name=op.f('pk_spending_caps'))
    )
    op.create_table('ledger_postings',
    sa.Column('transaction_id', sa.String(length=36), nullable=False),
    sa.Column('line', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account', sa.String(length=140), nullable=False),
    sa.Column('amount', _money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('project', sa.String(length=64), nullable=True),
    sa.Column('partition', sa.String(length=64), nullable=True),
    sa.Column('resource', sa.String(length=16), nullable=True),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_postings_nonzero')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'],
                            name=op.f('fk_ledger_postings_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('transaction_id', 'line', name=op.f('pk_ledger_postings'))
    )
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_postings_account_created', ['account', 'created_at'],
                              unique=False)

    op.create_table('holds',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('org', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=True),
    sa.Column('amount', _money(), nullable=False),
    sa.Column('from_project', _money(), nullable=False),
    sa.Column('from_org', _money(), nullable=False),
    sa.Column('core_hours', _money(), nullable=False),
    sa.Column('gpu_hours', _money(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('closed_at', _utc(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_holds_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds')),
    sa.UniqueConstraint('job_id', name=op.f('uq_holds_job_id'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_project_state', ['project', 'state'], unique=False)

    _immutable_postings()


def _immutable_postings() -> None:
    """Postings are append-only: the database refuses UPDATE and DELETE on them."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ledger_postings_immutable() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'ledger postings are immutable'; END;
            $$ LANGUAGE plpgsql""")
        op.execute("""
            CREATE TRIGGER ledger_postings_no_change BEFORE UPDATE OR DELETE
            ON ledger_postings FOR EACH ROW EXECUTE FUNCTION ledger_postings_immutable()""")
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(f"""
            CREATE TRIGGER ledger_postings_no_{action.lower()} BEFORE {action}
            ON ledger_postings BEGIN
                SELECT RAISE(ABORT, 'ledger postings are immutable');
            END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_postings_no_change ON ledger_postings")
        op.execute("DROP FUNCTION IF EXISTS ledger_postings_immutable()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_postings_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_postings_no_delete")
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_project_state')

    op.drop_table('holds')
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_postings_account_created')

    op.drop_table('ledger_postings')
    op.drop_table('spending_caps')
    op.drop_table('quota_grants')
    op.drop_table('price_book_versions')
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_transactions_created_at'))

    op.drop_table('ledger_transactions')
    op.drop_table('ledger_balances')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_owner'))

    op.drop_table('invoices')
    op.drop_table('funds_limits')
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contracts_org'))

    op.drop_table('contracts')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_project_created')
        batch_op.drop_index(batch_op.f('ix_charges_job_id'))

    op.drop_table('charges')
    op.drop_table('billing_whitelist')
    with op.batch_alter_table('billing_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_reviews_project'))

    op.drop_table('billing_reviews')

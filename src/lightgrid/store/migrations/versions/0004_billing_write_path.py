"""billing write path: drop unused indexes, check postings per statement

Every charge writes a transaction, its postings and a charge row, so each index and
per-row check on those tables is paid on every record:

- ``ix_ledger_transactions_created_at`` and ``ix_charges_job_id`` serve no query
  (transactions are read by id and receipt, charges by key and project); dropped.
- PostgreSQL: the unique receipt (top-ups) becomes a partial unique index over the
  transactions that have one, so charges (no receipt) no longer enter it.
- PostgreSQL: postings are indexed by (account, created_at) only for the funds
  accounts (wallets and holds), the ones statements read by period; revenue,
  receivable and cash postings (more than half of a charge's) no longer enter it.
- PostgreSQL: the foreign key from postings to their transaction checked each posting
  with its own query and row lock. One check per INSERT/COPY statement replaces it
  (every new posting's transaction must exist when the statement ends), and ledger
  transactions become append-only like their postings (no UPDATE, DELETE or TRUNCATE),
  so a transaction that a posting refers to can never go away. SQLite keeps the
  foreign key (its check is cheap) and gets the same append-only triggers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_FK = 'fk_ledger_postings_transaction_id_ledger_transactions'
_RECEIPT = 'uq_ledger_transactions_receipt'
_BY_ACCOUNT = 'ix_ledger_postings_account_created'
#: the postings in the account index; `lightgrid.center.billing.ledger` repeats it in
#: its queries for those accounts, so the planner can use the partial index
FUNDS_ACCOUNTS = "account LIKE 'wallet:%' OR account LIKE 'hold:%'"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_transactions_created_at')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_job_id')
    if not _postgresql():
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER ledger_transactions_no_{action.lower()} BEFORE {action}
                ON ledger_transactions BEGIN
                    SELECT RAISE(ABORT, 'ledger transactions are immutable');
                END""")
        return
    op.drop_constraint(_RECEIPT, 'ledger_transactions', type_='unique')
    op.create_index(_RECEIPT, 'ledger_transactions', ['receipt'], unique=True,
                    postgresql_where=sa.text('receipt IS NOT NULL'))
    op.drop_index(_BY_ACCOUNT, table_name='ledger_postings')
    op.create_index(_BY_ACCOUNT, 'ledger_postings', ['account', 'created_at'],
                    postgresql_where=sa.text(FUNDS_ACCOUNTS))
    op.drop_constraint(_FK, 'ledger_postings', type_='foreignkey')
    # One anti-join per statement, probing the primary key: the planner must not
    # hash or merge-join the whole transactions table for a batch.
    op.execute("""
        CREATE FUNCTION ledger_postings_have_transaction() RETURNS trigger
        LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off AS $$
        DECLARE
            missing text;
        BEGIN
            SELECT a.transaction_id INTO missing
              FROM (SELECT DISTINCT transaction_id FROM added) a
             WHERE NOT EXISTS (SELECT FROM ledger_transactions t
                                WHERE t.id = a.transaction_id)
             LIMIT 1;
            IF FOUND THEN
                RAISE foreign_key_violation USING MESSAGE =
                    format('ledger posting of unknown transaction %s', missing);
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER ledger_postings_have_transaction AFTER INSERT ON ledger_postings
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_have_transaction()""")
    op.execute("""
        CREATE FUNCTION ledger_transactions_immutable() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'ledger transactions are immutable'; END;
        $$ LANGUAGE plpgsql""")
    op.execute("""
        CREATE TRIGGER ledger_transactions_no_change BEFORE UPDATE OR DELETE
        ON ledger_transactions FOR EACH ROW EXECUTE FUNCTION ledger_transactions_immutable()""")
    op.execute("""
        CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE
        ON ledger_transactions FOR EACH STATEMENT
        EXECUTE FUNCTION ledger_transactions_immutable()""")


def downgrade() -> None:
    if _postgresql():
        op.execute("DROP TRIGGER ledger_transactions_no_truncate ON ledger_transactions")
        op.execute("DROP TRIGGER ledger_transactions_no_change ON ledger_transactions")
        op.execute("DROP FUNCTION ledger_transactions_immutable()")
        op.execute("DROP TRIGGER ledger_postings_have_transaction ON ledger_postings")
        op.execute("DROP FUNCTION ledger_postings_have_transaction()")
        op.create_foreign_key(_FK, 'ledger_postings', 'ledger_transactions',
                              ['transaction_id'], ['id'])
        op.drop_index(_RECEIPT, table_name='ledger_transactions')
        op.create_unique_constraint(_RECEIPT, 'ledger_transactions', ['receipt'])
        op.drop_index(_BY_ACCOUNT, table_name='ledger_postings')
        op.create_index(_BY_ACCOUNT, 'ledger_postings', ['account', 'created_at'])
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_transactions_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_transactions_no_delete")
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.create_index('ix_charges_job_id', ['job_id'], unique=False)
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_transactions_created_at', ['created_at'],
                              unique=False)

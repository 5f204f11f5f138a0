"""accounting: usage records and ingestion cursors

One row per run of a finished backend job (unique key), and the ingestion cursor of
each cluster, stored together by `lightgrid.center.accounting`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 02:08:22.055003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lightgrid.store.base

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingest_cursors',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=False),
    sa.Column('updated_at', lightgrid.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_ingest_cursors'))
    )
    op.create_table('usage_records',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('cluster', sa.String(length=64), nullable=False),
    sa.Column('backend_id', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('external', sa.Boolean(), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('account', sa.String(length=80), nullable=False),
    sa.Column('partition', sa.String(length=64), nullable=False),
    sa.Column('qos', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('submit_time', lightgrid.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('start_time', lightgrid.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_time', lightgrid.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('elapsed', sa.Integer(), nullable=False),
    sa.Column('cpu_time', sa.Float(), nullable=False),
    sa.Column('max_rss', sa.BigInteger(), nullable=False),
    sa.Column('cpus', sa.Integer(), nullable=False),
    sa.Column('mem', sa.BigInteger(), nullable=False),
    sa.Column('gpus', sa.Integer(), nullable=False),
    sa.Column('gpu_type', sa.String(length=32), nullable=True),
    sa.Column('charge_key', sa.String(length=200), nullable=True),
    sa.Column('ingested_at', lightgrid.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_usage_records_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_records')),
    sa.UniqueConstraint('key', name=op.f('uq_usage_records_key'))
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index('ix_usage_records_account_end', ['account', 'end_time'], unique=False)
        batch_op.create_index('ix_usage_records_cluster_backend', ['cluster', 'backend_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_records_job_id'), ['job_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_records_job_id'))
        batch_op.drop_index('ix_usage_records_cluster_backend')
        batch_op.drop_index('ix_usage_records_account_end')

    op.drop_table('usage_records')
    op.drop_table('ingest_cursors')

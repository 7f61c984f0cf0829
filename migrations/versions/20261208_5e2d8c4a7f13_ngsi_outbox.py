"""ngsi_outbox: the NGSI-LD push's outbox (docs/ioc.md, Push)

Revision ID: 5e2d8c4a7f13
Revises: 3c5e7a9b1d2f
Create Date: 2026-12-08 00:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '5e2d8c4a7f13'
down_revision: str | None = '3c5e7a9b1d2f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ngsi_outbox',
    sa.Column('entity_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('entity_type', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('broker_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('mqtt_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('entity_id')
    )


def downgrade() -> None:
    op.drop_table('ngsi_outbox')

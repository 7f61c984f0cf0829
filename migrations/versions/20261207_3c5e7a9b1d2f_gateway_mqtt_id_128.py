"""gateway mqtt_id up to 128 characters (one MQTT topic level, docs/protocol/mqtt.md)

Revision ID: 3c5e7a9b1d2f
Revises: b8f3a07ccf22
Create Date: 2026-12-07 23:59:00
"""

from collections.abc import Sequence

import sqlmodel
from alembic import op

revision: str = '3c5e7a9b1d2f'
down_revision: str | None = 'b8f3a07ccf22'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.alter_column(
            'mqtt_id',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=100),
            type_=sqlmodel.sql.sqltypes.AutoString(length=128),
            existing_nullable=True,
        )


def downgrade() -> None:
    # ids longer than 100 characters do not fit the old column: the downgrade fails on them
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.alter_column(
            'mqtt_id',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=128),
            type_=sqlmodel.sql.sqltypes.AutoString(length=100),
            existing_nullable=True,
        )

"""energy coverage: covered seconds per luminaire-hour and day; the monthly rollup sums them

Rows written before this revision have no coverage (0): telemetry did not record it, so their
baseline is 0 (docs/ioc.md, "Coverage"). Every month of energy_monthly is marked stale, so
the next rollup rebuilds it with the new columns; energy_monthly.dark_s is dropped (the
baseline now counts covered dark seconds only) and energy_monthly_state.dark_s holds the
month's dark seconds instead (coverage's denominator).

Revision ID: b8f3a07ccf22
Revises: eea7bdc826c9
Create Date: 2026-12-07 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'b8f3a07ccf22'
down_revision: str | None = 'eea7bdc826c9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('energy_hourly', 'energy_daily', 'energy_monthly')
COLUMNS = ('covered_s', 'covered_dark_s')


def upgrade() -> None:
    for table in TABLES:
        for column in COLUMNS:
            # ALTER TABLE ... ADD COLUMN on both databases (no table copy on SQLite)
            op.add_column(
                table, sa.Column(column, sa.Float(), nullable=False, server_default='0')
            )
    # native ALTER TABLE ... DROP COLUMN (SQLite 3.35+): keeps energy_monthly WITHOUT ROWID
    op.drop_column('energy_monthly', 'dark_s')
    op.add_column(
        'energy_monthly_state',
        sa.Column('dark_s', sa.Float(), nullable=False, server_default='0'),
    )
    op.execute(sa.text('UPDATE energy_monthly_state SET stale = :yes').bindparams(yes=True))


def downgrade() -> None:
    op.add_column(
        'energy_monthly', sa.Column('dark_s', sa.Float(), nullable=False, server_default='0')
    )
    op.drop_column('energy_monthly_state', 'dark_s')
    for table in TABLES:
        for column in COLUMNS:
            op.drop_column(table, column)
    op.execute(sa.text('UPDATE energy_monthly_state SET stale = :yes').bindparams(yes=True))

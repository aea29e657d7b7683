"""Messages in flight get their own partial index.

Every enqueue counts a client's in-flight messages per queue (up to the dispatch
window) and the relay scans them by age; without this index both read every
queued job of the client, however long its backlog.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "idx_async_jobs_outstanding",
        "async_jobs",
        ["queue_name", "client_id", "sent_at"],
        postgresql_where=sa.text(
            "status = 'queued' AND sent_at IS NOT NULL AND sent_at >= next_run_at"
        ),
    )


def downgrade() -> None:
    op.drop_index("idx_async_jobs_outstanding", table_name="async_jobs")

"""Webhook delivery: the states of an event and the triggers of an attempt are checked.

``webhook_events.status`` is ``pending``, ``delivered`` or ``failed``;
``webhook_attempts.trigger`` is ``scheduled`` or ``manual``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_check_constraint(
        op.f("ck_webhook_events_status"),
        "webhook_events",
        "status IN ('pending', 'delivered', 'failed')",
    )
    op.create_check_constraint(
        op.f("ck_webhook_attempts_trigger"),
        "webhook_attempts",
        "trigger IN ('scheduled', 'manual')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_webhook_attempts_trigger"), "webhook_attempts", type_="check")
    op.drop_constraint(op.f("ck_webhook_events_status"), "webhook_events", type_="check")

"""A user's email is unique within its client, not across all clients.

Seed 002 made ``users.email`` globally unique. Users belong to the upstream app
(API client) that submits their assessments; two apps may know the same person,
and one app's submission must neither fail on nor reveal another app's user.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("uq_users_email"), "users", type_="unique")
    op.create_unique_constraint(op.f("uq_users_client_id_email"), "users", ["client_id", "email"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_users_client_id_email"), "users", type_="unique")
    op.create_unique_constraint(op.f("uq_users_email"), "users", ["email"])

"""Question lineage (versioning) and the catalog's list indexes.

``questions.lineage_id`` groups the versions of one question and
``questions.supersedes_id`` points at the version a row replaced; each version
string appears once per lineage and a lineage has at most one active row.
``credential_catalog (created_at, id)`` backs the keyset pages of the API.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("questions", sa.Column("lineage_id", sa.UUID(), nullable=True))
    op.add_column("questions", sa.Column("supersedes_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_questions_supersedes_id_questions"),
        "questions",
        "questions",
        ["supersedes_id"],
        ["id"],
    )
    op.create_unique_constraint(
        op.f("uq_questions_lineage_id_version"), "questions", ["lineage_id", "version"]
    )
    op.create_index(
        "uq_questions_active_lineage",
        "questions",
        ["lineage_id"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_index("idx_questions_role", "questions", ["role_id"], unique=False)
    op.create_index(
        "idx_credential_catalog_created_id",
        "credential_catalog",
        ["created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("idx_credential_catalog_created_id", table_name="credential_catalog")
    op.drop_index("idx_questions_role", table_name="questions")
    op.drop_index(
        "uq_questions_active_lineage", table_name="questions", postgresql_where=sa.text("active")
    )
    op.drop_constraint(op.f("uq_questions_lineage_id_version"), "questions", type_="unique")
    op.drop_constraint(
        op.f("fk_questions_supersedes_id_questions"), "questions", type_="foreignkey"
    )
    op.drop_column("questions", "supersedes_id")
    op.drop_column("questions", "lineage_id")

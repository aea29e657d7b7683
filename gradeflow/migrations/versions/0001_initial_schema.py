"""Initial schema: seed 002 plus gradeflow's additions.

Creates the vector and citext extensions first: embedding_artifacts.vector
and users.email need them.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:46:53.780485
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE EXTENSION IF NOT EXISTS citext")
    op.create_table(
        "api_clients",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('submitter', 'operator', 'admin')", name=op.f("ck_api_clients_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_clients_key_hash")),
    )
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("actor_id", sa.UUID(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
    )
    op.create_table(
        "credential_catalog",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("skills", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_catalog")),
    )
    op.create_table(
        "embedding_artifacts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("vector", pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=True),
        sa.Column("raw_embedding", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedding_artifacts")),
        sa.UniqueConstraint(
            "entity_type",
            "entity_id",
            "provider",
            name=op.f("uq_embedding_artifacts_entity_type_entity_id_provider"),
        ),
    )
    op.create_index(
        "idx_embedding_artifacts_provider", "embedding_artifacts", ["provider"], unique=False
    )
    op.create_index(
        "idx_embedding_artifacts_vector_hnsw",
        "embedding_artifacts",
        ["vector"],
        unique=False,
        postgresql_using="hnsw",
        postgresql_ops={"vector": "vector_cosine_ops"},
    )
    op.create_table(
        "role_catalog",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("skills_profile", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_catalog")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_idempotency_keys_client_id_api_clients"),
        ),
        sa.PrimaryKeyConstraint("client_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "idx_idempotency_keys_created", "idempotency_keys", ["created_at"], unique=False
    )
    op.create_table(
        "questions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("role_id", sa.UUID(), nullable=True),
        sa.Column("question_type", sa.String(length=32), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("choices", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("rubric", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("weight", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "question_type IN ('multiple_choice', 'essay', 'profile')",
            name=op.f("ck_questions_question_type"),
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["role_catalog.id"], name=op.f("fk_questions_role_id_role_catalog")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questions")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("email", postgresql.CITEXT(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("profile", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("client_id", sa.UUID(), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.CheckConstraint("role IN ('student', 'advisor', 'admin')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_users_client_id_api_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint(
            "client_id", "external_id", name=op.f("uq_users_client_id_external_id")
        ),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_webhook_endpoints_client_id_api_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "idx_webhook_endpoints_client", "webhook_endpoints", ["client_id"], unique=False
    )
    op.create_table(
        "assessments",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("role_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("degraded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("client_id", sa.UUID(), nullable=True),
        sa.Column("total_score", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column("skill_scores", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "status IN ('in_progress', 'awaiting_async', 'completed', 'failed')",
            name=op.f("ck_assessments_status"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_assessments_client_id_api_clients")
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["role_catalog.id"], name=op.f("fk_assessments_role_id_role_catalog")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assessments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
    )
    op.create_index(
        "idx_assessments_client_created", "assessments", ["client_id", "created_at"], unique=False
    )
    op.create_index("idx_assessments_status", "assessments", ["status"], unique=False)
    op.create_index("idx_assessments_user", "assessments", ["user_id"], unique=False)
    op.create_table(
        "assessment_question_snapshots",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("question_id", sa.UUID(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("rubric", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("question_type", sa.String(length=32), nullable=False),
        sa.Column("choices", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("weight", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_assessment_question_snapshots_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_question_snapshots")),
        sa.UniqueConstraint(
            "assessment_id",
            "question_id",
            name=op.f("uq_assessment_question_snapshots_assessment_id_question_id"),
        ),
        sa.UniqueConstraint(
            "id", "assessment_id", name=op.f("uq_assessment_question_snapshots_id_assessment_id")
        ),
    )
    op.create_table(
        "async_jobs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("job_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queue_name", sa.String(length=32), server_default="cpu", nullable=False),
        sa.Column("client_id", sa.UUID(), nullable=True),
        sa.Column("dedup_key", sa.String(length=255), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("locked_by", sa.String(length=128), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rescues", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "(status IN ('succeeded', 'dead', 'cancelled')) = (completed_at IS NOT NULL)",
            name=op.f("ck_async_jobs_completed_at_iff_finished"),
        ),
        sa.CheckConstraint(
            "status <> 'running' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL)",
            name=op.f("ck_async_jobs_running_has_lease"),
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')",
            name=op.f("ck_async_jobs_status"),
        ),
        sa.CheckConstraint(
            "attempts >= 0 AND rescues >= 0", name=op.f("ck_async_jobs_counters_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_async_jobs_assessment_id_assessments"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_async_jobs_client_id_api_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_async_jobs")),
    )
    op.create_index("idx_async_jobs_assessment", "async_jobs", ["assessment_id"], unique=False)
    op.create_index(
        "idx_async_jobs_finished",
        "async_jobs",
        ["completed_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('succeeded', 'dead', 'cancelled')"),
    )
    op.create_index(
        "idx_async_jobs_queued_dispatch",
        "async_jobs",
        ["queue_name", "client_id", "next_run_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "idx_async_jobs_running_lease",
        "async_jobs",
        ["locked_until"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        "idx_async_jobs_status_next_run", "async_jobs", ["status", "next_run_at"], unique=False
    )
    op.create_index(
        "uq_async_jobs_job_type_dedup_key",
        "async_jobs",
        ["job_type", "dedup_key"],
        unique=True,
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    )
    op.create_table(
        "metric_snapshots",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("metric_type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "captured_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_metric_snapshots_assessment_id_assessments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_snapshots")),
    )
    op.create_index(
        "idx_metric_snapshots_type_captured",
        "metric_snapshots",
        ["metric_type", "captured_at"],
        unique=False,
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("degraded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'ready', 'failed')", name=op.f("ck_recommendations_status")
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_recommendations_assessment_id_assessments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
        sa.UniqueConstraint("assessment_id", name=op.f("uq_recommendations_assessment_id")),
    )
    op.create_index("idx_recommendations_status", "recommendations", ["status"], unique=False)
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("last_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("endpoint_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_webhook_events_assessment_id_assessments"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_events_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index(
        "idx_webhook_events_assessment", "webhook_events", ["assessment_id"], unique=False
    )
    op.create_index(
        "idx_webhook_events_endpoint_status",
        "webhook_events",
        ["endpoint_id", "status"],
        unique=False,
    )
    op.create_table(
        "assessment_responses",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("question_snapshot_id", sa.UUID(), nullable=True),
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "submitted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_assessment_responses_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_snapshot_id", "assessment_id"],
            ["assessment_question_snapshots.id", "assessment_question_snapshots.assessment_id"],
            name="snapshot_of_same_assessment",
        ),
        sa.ForeignKeyConstraint(
            ["question_snapshot_id"],
            ["assessment_question_snapshots.id"],
            name=op.f("fk_assessment_responses_question_snapshot_id_assessment_question_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_responses")),
        sa.UniqueConstraint(
            "assessment_id",
            "question_snapshot_id",
            name=op.f("uq_assessment_responses_assessment_id_question_snapshot_id"),
        ),
    )
    op.create_table(
        "essay_scores",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("question_snapshot_id", sa.UUID(), nullable=True),
        sa.Column("score", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("prompt_version", sa.String(length=32), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("cost_cents", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column("response_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_essay_scores_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_snapshot_id", "assessment_id"],
            ["assessment_question_snapshots.id", "assessment_question_snapshots.assessment_id"],
            name="snapshot_of_same_assessment",
        ),
        sa.ForeignKeyConstraint(
            ["question_snapshot_id"],
            ["assessment_question_snapshots.id"],
            name=op.f("fk_essay_scores_question_snapshot_id_assessment_question_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_essay_scores")),
        sa.UniqueConstraint(
            "assessment_id",
            "question_snapshot_id",
            name=op.f("uq_essay_scores_assessment_id_question_snapshot_id"),
        ),
    )
    op.create_table(
        "rag_traces",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("recommendation_id", sa.UUID(), nullable=True),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=False),
        sa.Column("similarity", sa.Numeric(precision=5, scale=3), nullable=False),
        sa.Column("embedding_artifact_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["embedding_artifact_id"],
            ["embedding_artifacts.id"],
            name=op.f("fk_rag_traces_embedding_artifact_id_embedding_artifacts"),
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_rag_traces_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rag_traces")),
    )
    op.create_table(
        "recommendation_feedback",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("recommendation_id", sa.UUID(), nullable=True),
        sa.Column("submitted_by", sa.UUID(), nullable=True),
        sa.Column("submitted_by_role", sa.String(length=16), nullable=False),
        sa.Column("relevance_score", sa.Integer(), nullable=True),
        sa.Column("acceptance_status", sa.String(length=16), nullable=True),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column(
            "submitted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "relevance_score BETWEEN 1 AND 5",
            name=op.f("ck_recommendation_feedback_relevance_score"),
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_recommendation_feedback_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"],
            ["users.id"],
            name=op.f("fk_recommendation_feedback_submitted_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_feedback")),
    )
    op.create_index(
        "idx_recommendation_feedback_reco",
        "recommendation_feedback",
        ["recommendation_id"],
        unique=False,
    )
    op.create_table(
        "recommendation_items",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("recommendation_id", sa.UUID(), nullable=True),
        sa.Column("credential_id", sa.UUID(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Numeric(precision=5, scale=3), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("source_trace_ids", postgresql.ARRAY(sa.UUID()), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credential_catalog.id"],
            name=op.f("fk_recommendation_items_credential_id_credential_catalog"),
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_recommendation_items_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_items")),
        sa.UniqueConstraint(
            "recommendation_id",
            "credential_id",
            name=op.f("uq_recommendation_items_recommendation_id_credential_id"),
        ),
    )
    op.create_index(
        "idx_recommendation_items_position",
        "recommendation_items",
        ["recommendation_id", "position"],
        unique=False,
    )
    op.create_table(
        "rule_scores",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=True),
        sa.Column("question_snapshot_id", sa.UUID(), nullable=True),
        sa.Column("score", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("rules_applied", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_rule_scores_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_snapshot_id", "assessment_id"],
            ["assessment_question_snapshots.id", "assessment_question_snapshots.assessment_id"],
            name="snapshot_of_same_assessment",
        ),
        sa.ForeignKeyConstraint(
            ["question_snapshot_id"],
            ["assessment_question_snapshots.id"],
            name=op.f("fk_rule_scores_question_snapshot_id_assessment_question_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_scores")),
        sa.UniqueConstraint(
            "assessment_id",
            "question_snapshot_id",
            name=op.f("uq_rule_scores_assessment_id_question_snapshot_id"),
        ),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_events.id"],
            name=op.f("fk_webhook_attempts_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        "idx_webhook_attempts_event", "webhook_attempts", ["event_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("idx_webhook_attempts_event", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_table("rule_scores")
    op.drop_index("idx_recommendation_items_position", table_name="recommendation_items")
    op.drop_table("recommendation_items")
    op.drop_index("idx_recommendation_feedback_reco", table_name="recommendation_feedback")
    op.drop_table("recommendation_feedback")
    op.drop_table("rag_traces")
    op.drop_table("essay_scores")
    op.drop_table("assessment_responses")
    op.drop_index("idx_webhook_events_endpoint_status", table_name="webhook_events")
    op.drop_index("idx_webhook_events_assessment", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_index("idx_recommendations_status", table_name="recommendations")
    op.drop_table("recommendations")
    op.drop_index("idx_metric_snapshots_type_captured", table_name="metric_snapshots")
    op.drop_table("metric_snapshots")
    op.drop_index(
        "uq_async_jobs_job_type_dedup_key",
        table_name="async_jobs",
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    )
    op.drop_index("idx_async_jobs_status_next_run", table_name="async_jobs")
    op.drop_index(
        "idx_async_jobs_running_lease",
        table_name="async_jobs",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index(
        "idx_async_jobs_queued_dispatch",
        table_name="async_jobs",
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.drop_index(
        "idx_async_jobs_finished",
        table_name="async_jobs",
        postgresql_where=sa.text("status IN ('succeeded', 'dead', 'cancelled')"),
    )
    op.drop_index("idx_async_jobs_assessment", table_name="async_jobs")
    op.drop_table("async_jobs")
    op.drop_table("assessment_question_snapshots")
    op.drop_index("idx_assessments_user", table_name="assessments")
    op.drop_index("idx_assessments_status", table_name="assessments")
    op.drop_index("idx_assessments_client_created", table_name="assessments")
    op.drop_table("assessments")
    op.drop_index("idx_webhook_endpoints_client", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_table("users")
    op.drop_table("questions")
    op.drop_index("idx_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("role_catalog")
    op.drop_index(
        "idx_embedding_artifacts_vector_hnsw",
        table_name="embedding_artifacts",
        postgresql_using="hnsw",
        postgresql_ops={"vector": "vector_cosine_ops"},
    )
    op.drop_index("idx_embedding_artifacts_provider", table_name="embedding_artifacts")
    op.drop_table("embedding_artifacts")
    op.drop_table("credential_catalog")
    op.drop_table("audit_logs")
    op.drop_table("api_clients")
    # The extensions stay: other schemas of the database may use them.

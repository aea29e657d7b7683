"""Every table of gradeflow, grouped by the part of the product that owns it.

Importing this package registers all tables on ``Base.metadata`` (Alembic's
autogenerate and the migration-drift test rely on that).
"""

from gradeflow.db.schema.assessments import (
    Assessment,
    AssessmentQuestionSnapshot,
    AssessmentResponse,
    IdempotencyKey,
    User,
)
from gradeflow.db.schema.catalog import CredentialCatalog, EmbeddingArtifact, Question, RoleCatalog
from gradeflow.db.schema.clients import ApiClient, AuditLog
from gradeflow.db.schema.jobs import AsyncJob
from gradeflow.db.schema.metrics import MetricSnapshot
from gradeflow.db.schema.recommendations import (
    RagTrace,
    Recommendation,
    RecommendationFeedback,
    RecommendationItem,
)
from gradeflow.db.schema.scoring import EssayScore, RuleScore
from gradeflow.db.schema.webhooks import WebhookAttempt, WebhookEndpoint, WebhookEvent

__all__ = [
    "ApiClient",
    "Assessment",
    "AssessmentQuestionSnapshot",
    "AssessmentResponse",
    "AsyncJob",
    "AuditLog",
    "CredentialCatalog",
    "EmbeddingArtifact",
    "EssayScore",
    "IdempotencyKey",
    "MetricSnapshot",
    "Question",
    "RagTrace",
    "Recommendation",
    "RecommendationFeedback",
    "RecommendationItem",
    "RoleCatalog",
    "RuleScore",
    "User",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookEvent",
]

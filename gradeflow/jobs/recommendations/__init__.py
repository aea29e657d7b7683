"""Credential recommendations: skill gaps → retrieval over pgvector → ranking → rationale.

Importing this package registers the ``build_recommendations`` job type.
"""

from __future__ import annotations

from gradeflow.jobs.recommendations.build import BUILD_RECOMMENDATIONS_JOB

__all__ = ["BUILD_RECOMMENDATIONS_JOB"]

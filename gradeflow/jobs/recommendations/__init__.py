"""Credential recommendations: skill gaps → retrieval over pgvector → ranking → rationale."""

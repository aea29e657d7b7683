"""Alembic migrations; the first revision creates the vector and citext extensions."""

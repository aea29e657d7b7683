"""Postgres: the tables, the engine, and every statement that changes state."""

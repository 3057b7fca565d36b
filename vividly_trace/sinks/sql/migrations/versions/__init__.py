"""Alembic revisions of the SQL store (alembic skips this file)."""

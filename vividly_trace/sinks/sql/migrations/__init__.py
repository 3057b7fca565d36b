"""Alembic migrations of the SQL store, shipped in the package (see ``..migrate``)."""

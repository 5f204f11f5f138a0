"""Persistence: SQLAlchemy 2 models, Alembic migrations, the engine and sessions."""

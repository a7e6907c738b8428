"""State-store tables (SQLAlchemy) and history table schemas (the canonical data model)."""

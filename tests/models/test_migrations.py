"""The Alembic migrations build exactly the models' schema, and go down and up again."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from winback.kit.db import make_engine
from winback.models.migrate import downgrade, upgrade
from winback.models.state import Base


def test_migrations_match_models_and_round_trip(state_url):
    engine = make_engine(state_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert {"customers", "import_runs", "customer_scores", "analysis_runs"} <= set(inspect(engine).get_table_names())
        downgrade(engine, "base")
        assert "customers" not in inspect(engine).get_table_names()
        upgrade(engine)
        assert "customers" in inspect(engine).get_table_names()
    finally:
        engine.dispose()

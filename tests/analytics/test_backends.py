"""The same analytics on DuckDB, PostgreSQL and PySpark give identical numbers.

The generated history (SaaS + e-commerce, two sources sharing customer ids) is copied from
DuckDB into a fresh schema of the PostgreSQL server (``WINBACK_TEST_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``) and into a local Spark session (Parquet files
registered as temporary views, session time zone UTC). Every analytics function that reads
the history runs on all three and the results are compared exactly.

The Spark comparison needs ``pip install -e '.[spark]'`` and Java 17; it takes about two
minutes on a 2-core machine (JVM start plus ~15 queries of many stages each), so it runs only
when ``WINBACK_TEST_SPARK=1`` is set.
"""

from __future__ import annotations

import os
import uuid

import duckdb
import ibis
import pytest

from winback.analytics import metrics
from winback.analytics.cohorts import cohort_matrix
from winback.analytics.rfm import rfm_table
from winback.analytics.survival import tenure
from winback.history.store import create_table_sql
from winback.models.history import TABLES_BY_NAME

from .conftest import OBSERVATION_END

TABLES = ("subscriptions", "subscription_changes", "invoices", "orders")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def run_all(con) -> dict:
    """Every history-reading analytics result, in plain Python values."""
    out = {}
    for label in ("2024-Q4", "2025-03"):
        for by in (None, "plan", "cohort"):
            out[f"retention {label} {by}"] = metrics.retention(con, label, by=by)
        out[f"churn_by_reason {label}"] = metrics.churn_by_reason(con, label)
    out["paid_spells"] = sorted(
        tuple(r.values()) for r in metrics.paid_spells(con).to_pyarrow().to_pylist())
    out["cohort_matrix"] = cohort_matrix(con, OBSERVATION_END).to_pylist()
    out["cohort_matrix quarter"] = cohort_matrix(con, OBSERVATION_END, grain="quarter").to_pylist()
    out["tenure"] = tenure(con, OBSERVATION_END).to_pylist()
    out["rfm orders"] = rfm_table(con, OBSERVATION_END, kind="orders").to_pylist()
    out["rfm invoices"] = rfm_table(con, OBSERVATION_END, kind="invoices").to_pylist()
    return out


@pytest.fixture(scope="module")
def duckdb_results(generated):
    con = ibis.duckdb.connect(str(generated["history"]), read_only=True)
    try:
        return run_all(con)
    finally:
        con.disconnect()


def _pg_params() -> dict:
    from sqlalchemy.engine import make_url

    url = make_url(os.environ.get("WINBACK_TEST_DATABASE_URL", "").strip() or DEFAULT_PG_URL)
    return {k: v for k, v in {"host": url.host, "port": url.port or 5432, "user": url.username,
                              "password": url.password, "dbname": url.database}.items() if v is not None}


@pytest.fixture(scope="module")
def pg_con(generated):
    import psycopg

    params = _pg_params()
    schema = f"wb_analytics_{uuid.uuid4().hex[:10]}"
    src = duckdb.connect(str(generated["history"]), read_only=True)
    admin = psycopg.connect(**params, autocommit=True)
    try:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(f'SET search_path TO "{schema}"')
        for name in TABLES:
            admin.execute(create_table_sql(TABLES_BY_NAME[name]))
            columns = [c.name for c in TABLES_BY_NAME[name].columns] + ["source", "_row_hash"]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = src.execute(f'SELECT {quoted} FROM "{name}"').fetchall()
            with admin.cursor().copy(f'COPY "{name}" ({quoted}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        admin.execute("ANALYZE")
        con = ibis.postgres.connect(host=params.get("host"), port=params.get("port"), user=params.get("user"),
                                    password=params.get("password"), database=params.get("dbname"), schema=schema)
        yield con
        con.disconnect()
    finally:
        src.close()
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


@pytest.fixture(scope="module")
def spark_con(generated, tmp_path_factory):
    import pyspark.sql as pyspark_sql

    folder = tmp_path_factory.mktemp("spark_tables")
    src = duckdb.connect(str(generated["history"]), read_only=True)
    try:
        for name in TABLES:
            src.execute(f"COPY \"{name}\" TO '{folder / name}.parquet' (FORMAT parquet)")
    finally:
        src.close()
    session = (pyspark_sql.SparkSession.builder.master("local[2]").appName("winback-analytics-test")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.default.parallelism", "2")
               .config("spark.sql.adaptive.enabled", "false")
               .config("spark.driver.memory", "2g")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        for name in TABLES:
            session.read.parquet(str(folder / f"{name}.parquet")).createOrReplaceTempView(name)
        yield ibis.pyspark.connect(session)
    finally:
        session.stop()


def _compare(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key] == expected[key], key


def test_duckdb_results_are_not_trivial(duckdb_results):
    [r] = duckdb_results["retention 2024-Q4 None"]
    assert r["start_customers"] > 300 and r["lost_customers"] > 10 and r["mrr"]["USD"]["start_mrr"] > 0
    assert len(duckdb_results["rfm orders"]) > 100 and len(duckdb_results["tenure"]) > 1000
    # two sources share customer ids: the (source, customer_id) key keeps them apart
    ids = {}
    for row in duckdb_results["rfm invoices"] + duckdb_results["rfm orders"]:
        ids.setdefault(row["customer_id"], set()).add(row["source"])
    assert any(len(v) == 2 for v in ids.values())


def test_postgres_gives_identical_numbers(duckdb_results, pg_con):
    _compare(duckdb_results, run_all(pg_con))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("WINBACK_TEST_SPARK", "").strip() not in ("1", "true", "yes"),
                    reason="PySpark equivalence takes ~2 minutes on 2 cores: set WINBACK_TEST_SPARK=1 to run it")
def test_pyspark_gives_identical_numbers(duckdb_results, spark_con):
    _compare(duckdb_results, run_all(spark_con))

"""The history store: the facts, columnar (DuckDB by default), read through Ibis."""

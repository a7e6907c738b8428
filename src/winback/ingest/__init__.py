"""Ingest: read source files, validate every cell, load both stores all-or-nothing and idempotently."""

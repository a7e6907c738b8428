from pathlib import Path

import pytest

from winback.models.history import TABLES, Column, Table, render_markdown


def test_docs_match_the_specs():
    doc = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"
    assert doc.read_text(encoding="utf-8") == render_markdown(), "regenerate docs/data-model.md"


def test_tables_are_in_dependency_order():
    seen = set()
    for table in TABLES:
        for column in table.columns:
            if column.references:
                assert column.references[0] in seen | {table.name}, (table.name, column.name)
        seen.add(table.name)


def test_spec_guards():
    with pytest.raises(ValueError, match="unknown column kind"):
        Column("x", "float")
    with pytest.raises(ValueError, match="needs choices"):
        Column("x", "enum")
    with pytest.raises(ValueError, match="currency"):
        Table("t", key=("id",), columns=(Column("id", "id", required=True), Column("amount", "money")))
    with pytest.raises(ValueError, match="key column"):
        Table("t", key=("id",), columns=(Column("id", "id"),))

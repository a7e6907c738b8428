"""Output formats, determinism, argument checking and the hand-written text pools."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.synth.synth_checks import (
    SAAS_TABLES, SHOP_TABLES, read_csv, read_jsonl, reference_problems, spec_problems,
)
from winback.models.history import TABLES_BY_NAME
from winback.synth import GenerateResult, generate
from winback.synth.texts import (
    LANGUAGES, SAAS_REASON_TEXTS, SHOP_REASON_TEXTS, TEXT_REASONS, TICKET_SUBJECTS, TextPool, pool_sizes,
)

END = dt.date(2025, 12, 31)


def digests(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("kind", ["saas", "ecommerce"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, kind):
    a = generate(kind, 600, 5, tmp_path / "a")
    b = generate(kind, 600, 5, tmp_path / "b")
    c = generate(kind, 600, 6, tmp_path / "c")
    da, db, dc = digests(tmp_path / "a"), digests(tmp_path / "b"), digests(tmp_path / "c")
    assert da == db
    assert a.rows == b.rows
    unchanged = {name for name in da if da[name] == dc.get(name)}
    assert unchanged <= {"plans.csv", "price_changes.csv", "releases.csv"}  # catalogue tables, not seeded
    assert c.summary()["seed"] == 6


@pytest.mark.parametrize("kind,tables", [("saas", SAAS_TABLES), ("ecommerce", SHOP_TABLES)])
def test_csv_parquet_jsonl_hold_the_same_rows(tmp_path, kind, tables):
    results = {fmt: generate(kind, 500, 9, tmp_path / fmt, fmt=fmt) for fmt in ("csv", "parquet", "jsonl")}
    assert results["csv"].rows == results["parquet"].rows == results["jsonl"].rows
    for name in tables:
        spec = TABLES_BY_NAME[name]
        csv_table = read_csv(tmp_path / "csv" / f"{name}.csv", name)
        pq_table = pq.read_table(tmp_path / "parquet" / f"{name}.parquet")
        lines = read_jsonl(tmp_path / "jsonl" / f"{name}.jsonl")
        n = results["csv"].rows[name]
        assert csv_table.num_rows == pq_table.num_rows == len(lines) == n
        assert pq_table.column_names == spec.column_names
        assert all(list(line) == spec.column_names for line in lines)
        # typed Parquet: timestamps in UTC, whole numbers, booleans
        for col in spec.columns:
            typ = pq_table.schema.field(col.name).type
            if col.kind == "timestamp":
                assert typ == pa.timestamp("us", tz="UTC")
            elif col.kind in ("integer", "money"):
                assert typ == pa.int64()
            elif col.kind == "boolean":
                assert typ == pa.bool_()
            else:
                assert typ == pa.string()
        # the same cells in every format (compared as text)
        if n:
            first = csv_table.slice(0, 1).to_pylist()[0]
            line = lines[0]
            for col in spec.columns:
                value = line[col.name]
                if isinstance(value, bool):
                    value = "true" if value else "false"
                assert (None if value is None else str(value)) == first[col.name], (name, col.name)
                if col.kind == "json" and value is not None:
                    assert isinstance(json.loads(value), dict)
            ts_cols = [c.name for c in spec.columns if c.kind == "timestamp"]
            for c in ts_cols:
                as_text = pc.strftime(pq_table.column(c).cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
                assert as_text.to_pylist() == csv_table.column(c).to_pylist()


def test_jsonl_is_one_object_per_line(tmp_path):
    generate("saas", 200, 1, tmp_path, fmt="jsonl")
    with open(tmp_path / "customers.jsonl", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 200 and all(line.startswith("{") and line.endswith("}") for line in lines)
    assert any(re.search(r"[\u3040-\u30ff\uac00-\ud7af\u4e00-\u9fff]", line) for line in lines)  # raw UTF-8


@pytest.mark.parametrize("kind", ["saas", "ecommerce"])
def test_a_single_customer_works(tmp_path, kind):
    result = generate(kind, 1, 0, tmp_path, fmt="parquet")
    assert result.rows["customers"] == 1
    truth = pq.read_table(result.ground_truth)
    assert truth.num_rows == 1


@pytest.mark.parametrize("kind,tables", [("saas", SAAS_TABLES), ("ecommerce", SHOP_TABLES)])
def test_several_seeds_stay_valid(tmp_path, kind, tables):
    for seed in (101, 202):
        out = tmp_path / str(seed)
        generate(kind, 300, seed, out)
        data = {name: read_csv(out / f"{name}.csv", name) for name in tables}
        assert [p for name in tables for p in spec_problems(name, data[name], END)] == []
        assert reference_problems(data) == []


@pytest.mark.parametrize("args,match", [
    (dict(kind="retail"), "unknown kind"),
    (dict(fmt="xlsx"), "unknown format"),
    (dict(customers=0), "at least 1"),
    (dict(customers=-5), "at least 1"),
    (dict(customers=2.5), "whole number"),
    (dict(customers=True), "whole number"),
    (dict(seed="x"), "seed"),
    (dict(observation_end=dt.date(2022, 12, 31)), "observation_end"),
    (dict(observation_end="2025-12-31"), "observation_end"),
])
def test_bad_arguments_raise_a_one_line_value_error(tmp_path, args, match):
    call = dict(kind="saas", customers=10, seed=1, out_dir=tmp_path / "x")
    call.update(args)
    with pytest.raises(ValueError, match=match) as info:
        generate(**call)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x").exists()


def test_result_type(tmp_path):
    result = generate("ecommerce", 50, 1, tmp_path)
    assert isinstance(result, GenerateResult)
    summary = result.summary()
    assert summary["bgnbd"]["r"] > 0 and set(summary["personas"]) >= {"bouncer", "repeat_buyer"}
    assert summary["observation_end"] == END.isoformat()


# ------------------------------------------------------------------------------- texts

@pytest.mark.parametrize("groups,minimum", [(SAAS_REASON_TEXTS, 7), (SHOP_REASON_TEXTS, 4)])
def test_reason_texts_are_varied_in_every_language(groups, minimum):
    assert set(groups) == set(TEXT_REASONS)
    sizes = pool_sizes(groups)
    for reason, per_lang in sizes.items():
        for lang in LANGUAGES:
            assert per_lang[lang] >= minimum, (reason, lang)
            texts = groups[reason][lang]
            assert len(set(texts)) == len(texts)
    # sentences are not shared between reasons
    for lang in LANGUAGES:
        seen = [x for reason in groups for x in groups[reason][lang]]
        assert len(set(seen)) == len(seen)


def test_ticket_subjects_cover_every_topic_and_language():
    for topic, per_lang in TICKET_SUBJECTS.items():
        assert set(per_lang) == set(LANGUAGES), topic
        assert all(len(v) >= 2 for v in per_lang.values())


def test_text_pool_fills_placeholders():
    pool = TextPool(SAAS_REASON_TEXTS, ("Acme",))
    rng = np.random.default_rng(0)
    n = 3000
    texts = pool.draw(rng, np.full(n, pool.code("competitor")), np.zeros(n, dtype=np.int64)).to_pylist()
    assert all("{" not in x for x in texts) and any("Acme" in x for x in texts)
    feature = pool.draw(rng, np.full(n, pool.code("missing_feature")), np.full(n, 1, dtype=np.int64),
                        np.full(n, 1, dtype=np.int64)).to_pylist()
    assert all("Integration X" in x for x in feature) and len(set(feature)) >= 6


def test_regenerating_in_another_format_replaces_the_old_files(tmp_path):
    from winback.synth import generate

    (tmp_path / "notes.txt").write_text("keep me")
    generate("ecommerce", 200, 1, tmp_path, fmt="csv")
    generate("ecommerce", 200, 1, tmp_path, fmt="parquet")
    assert not list(tmp_path.glob("*.csv"))
    assert (tmp_path / "orders.parquet").exists() and (tmp_path / "notes.txt").read_text() == "keep me"

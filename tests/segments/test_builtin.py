"""Every built-in segment compiles and selects exactly the expected customers of a hand-built history."""

from __future__ import annotations

import pytest

from tests.segments.conftest import select_ids
from winback.segments.builtin import BUILTIN_DIR, builtin_definitions, builtin_specs, load_catalog

PROFILE = [
    # price increase (effective 2024-10-01): churned Oct 2024 - Mar 2025, high or top value
    {"customer_id": "p1", "status": "churned", "churned_at": "2024-11-15", "value_tier": "high"},
    {"customer_id": "p2", "status": "churned", "churned_at": "2024-09-30T23:00", "value_tier": "top"},
    {"customer_id": "p3", "status": "churned", "churned_at": "2025-03-31T18:00", "value_tier": "top"},
    {"customer_id": "p4", "status": "churned", "churned_at": "2025-04-01T00:00", "value_tier": "high"},
    {"customer_id": "p5", "status": "churned", "churned_at": "2024-12-01", "value_tier": "mid"},
    {"customer_id": "p6", "status": "active", "value_tier": "top"},
    {"customer_id": "p7", "status": "trial_only", "churned_at": "2024-12-01", "value_tier": "top"},
    # Integration X, churned in H1 2025
    {"customer_id": "x1", "status": "churned", "churned_at": "2025-02-10", "requested_features": ["integration_x"]},
    {"customer_id": "x2", "status": "churned", "churned_at": "2025-06-30T20:00", "requested_features": []},
    {"customer_id": "x3", "status": "churned", "churned_at": "2025-07-01", "requested_features": ["integration_x"]},
    {"customer_id": "x4", "status": "churned", "churned_at": "2025-03-01", "requested_features": ["integration_y"]},
    {"customer_id": "x5", "status": "active", "requested_features": ["integration_x"]},
    # trials that never converted, citing complexity
    {"customer_id": "t1", "status": "trial_only", "reason": "usability", "churned_at": "2025-08-01"},
    {"customer_id": "t2", "status": "trial_only", "reason": "price"},
    {"customer_id": "t3", "status": "churned", "reason": "usability"},
    # checkouts
    *({"customer_id": c, "status": "prospect"} for c in ("i1", "i2", "i3", "i4", "i5", "a1", "a2", "a3", "a4")),
    # active customers at risk
    {"customer_id": "r1", "status": "active", "health_band": "healthy"},
    {"customer_id": "r2", "status": "active", "health_band": "watch"},
    {"customer_id": "r3", "status": "active"},
    {"customer_id": "r4", "status": "active", "health_band": "at_risk"},
    {"customer_id": "r5", "status": "churned", "health_band": "at_risk"},
    {"customer_id": "r6", "status": "active"},
    {"customer_id": "r7", "status": "lost"},
    # lost value: 10 churned/lost customers with a value -> the top 2
    *({"customer_id": f"v{i:02d}", "status": "churned" if i % 2 else "lost", "lost_value_minor": i * 1000}
      for i in range(1, 11)),
    {"customer_id": "v_active", "status": "active", "lost_value_minor": 10**9},
]


def _orders(customer: str, *dates: str, status: str = "completed") -> list[dict]:
    return [{"order_id": f"{customer}-{status}-{i}", "customer_id": customer, "ordered_at": at, "status": status,
             "total_amount": 1000, "currency": "USD"} for i, at in enumerate(dates)]


def _checkouts(customer: str, *rows: tuple[str, str, str | None]) -> list[dict]:
    return [{"checkout_id": f"{customer}-{i}", "customer_id": customer, "started_at": at, "status": status,
             "email": email} for i, (at, status, email) in enumerate(rows)]


EMAIL = "buyer@example.com"
EVENTS = dict(
    product_events=[
        {"event_id": "f1", "customer_id": "x2", "occurred_at": "2024-12-01", "event_type": "feature_requested",
         "feature": "integration_x"},
        {"event_id": "f2", "customer_id": "x4", "occurred_at": "2024-12-01", "event_type": "feature_requested",
         "feature": "integration_y"},
        {"event_id": "f3", "customer_id": "p1", "occurred_at": "2024-12-01", "event_type": "feature_used",
         "feature": "integration_x"},
    ],
    checkouts=[
        *_checkouts("i1", ("2026-01-10", "incomplete", EMAIL)),
        *_checkouts("i2", ("2026-01-05", "incomplete", EMAIL), ("2026-01-06", "completed", EMAIL)),
        *_checkouts("i3", ("2026-01-02", "completed", EMAIL), ("2026-01-08", "incomplete", None)),
        *_checkouts("i4", ("2025-12-01", "incomplete", EMAIL)),
        *_checkouts("i5", ("2026-01-16", "incomplete", EMAIL)),  # after as_of
        *_checkouts("a1", ("2026-01-12", "abandoned", EMAIL)),
        *_checkouts("a2", ("2026-01-12", "abandoned", None)),
        *_checkouts("a3", ("2026-01-03", "abandoned", EMAIL), ("2026-01-04", "completed", EMAIL)),
        *_checkouts("a4", ("2026-01-03", "abandoned", EMAIL), ("2026-01-04", "completed", EMAIL),
                    ("2026-01-11", "abandoned", EMAIL)),
    ],
    orders=[
        *_orders("r1", "2025-03-01", "2025-05-01", "2025-08-01", "2025-10-20"),  # regular, quiet for 87 days
        *_orders("r2", "2025-03-01", "2025-05-01", "2025-12-20"),               # ordered 26 days ago
        *_orders("r3", "2025-08-01", "2025-10-01"),                             # only 2 orders: not regular
        *_orders("r6", "2025-02-01", "2025-04-01", "2025-06-01"),
        *_orders("r6", "2026-01-02", status="canceled"),                        # a canceled order is no order
        *_orders("r7", "2025-02-01", "2025-04-01", "2025-06-01"),               # not active
    ],
)

EXPECTED = {
    "high_value_churned_after_price_increase": ["p1", "p3"],
    "requested_integration_x_churned_h1_2025": ["x1", "x2"],
    "trial_never_converted_complexity": ["t1"],
    "incomplete_orders": ["i1", "i3"],
    "abandoned_orders": ["a1", "a4"],
    "active_at_risk": ["r1", "r4", "r6"],
    "top_lost_value": ["v09", "v10"],
}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from tests.segments.conftest import write_store

    return write_store(tmp_path_factory.mktemp("builtin") / "history.duckdb", PROFILE, **EVENTS)


def test_every_builtin_has_an_expectation():
    assert sorted(builtin_specs()) == sorted(EXPECTED)
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")) == sorted(EXPECTED)
    for d in builtin_definitions():
        assert d.spec.title and d.spec.description, d.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_selects_exactly(history, name):
    spec = builtin_specs()[name]
    assert select_ids(history, spec, resolver=builtin_specs()) == EXPECTED[name]


def test_workspace_file_overrides_a_builtin(tmp_path):
    folder = tmp_path / "segments"
    folder.mkdir()
    (folder / "mine.yaml").write_text("name: top_lost_value\ntitle: Top 10%\nmatch:\n  field: lost_value_minor\n"
                                      "  op: top_percent\n  value: 10\n", encoding="utf-8")
    (folder / "extra.json").write_text('{"name": "extra", "match": {"status": "active"}}', encoding="utf-8")
    (folder / "broken.yaml").write_text("name: trial_never_converted_complexity\nmatch: {status: nope}\n",
                                        encoding="utf-8")
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    catalog = load_catalog(tmp_path)
    assert catalog.get("top_lost_value").origin == "workspace"
    assert catalog.get("top_lost_value").spec.title == "Top 10%"
    assert catalog.get("extra").origin == "workspace"
    assert catalog.get("abandoned_orders").origin == "builtin"
    # a broken override is reported and shadows the built-in rather than silently falling back to it
    assert catalog.get("trial_never_converted_complexity") is None
    problem = catalog.problem_for("trial_never_converted_complexity")
    assert "broken.yaml" in problem.error and "match.status" in problem.error
    assert "trial_never_converted_complexity" in catalog.names()

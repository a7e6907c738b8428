"""Analytics on generated data: a plain-Python reference implementation of the definitions, the
generator's ground truth, and the story the generator tells (price increase, involuntary churn)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from winback.analytics import metrics
from winback.analytics.cohorts import cohort_matrix
from winback.analytics.periods import Period, parse_period
from winback.analytics.reasons import CANCEL_CODE_REASONS
from winback.analytics.rfm import rfm_scores, rfm_segments, rfm_table
from winback.analytics.survival import km_by, tenure

from .conftest import OBSERVATION_END

UTC = dt.timezone.utc


# ------------------------------------------------------------------------- reference implementation

def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


class Reference:
    """The module docstring's definitions, row by row in Python (slow, obvious)."""

    def __init__(self, path):
        con = duckdb.connect(str(path), read_only=True)
        self.subs = con.execute("""SELECT source, customer_id, subscription_id, status, started_at, trial_end,
            canceled_at, ended_at, mrr, currency, cancel_reason_code FROM subscriptions""").fetchall()
        changes = con.execute("""SELECT source, subscription_id, changed_at, change_id, old_mrr, new_mrr
            FROM subscription_changes ORDER BY changed_at, change_id""").fetchall()
        invoices = con.execute("""SELECT source, subscription_id, created_at, status, attempt_count FROM invoices
            WHERE subscription_id IS NOT NULL""").fetchall()
        con.close()
        self.changes = defaultdict(list)
        for src, sid, at, _, old, new in changes:
            self.changes[(src, sid)].append((at, old, new))
        self.invoices = defaultdict(list)
        for src, sid, at, status, attempts in invoices:
            self.invoices[(src, sid)].append((at, status, attempts))
        self.spells = []
        for src, cid, sid, status, started, trial_end, canceled, ended, mrr, cur, code in self.subs:
            if status in metrics.NEVER_PAYING_STATUSES:
                continue
            start = trial_end or started
            end = (ended or canceled) if status == "canceled" else None
            if end is not None and end <= start:
                continue
            self.spells.append(dict(key=(src, cid), sid=(src, sid), start=start, end=end, mrr=mrr, cur=cur,
                                    involuntary=end is not None and self._involuntary(code, (src, sid), end),
                                    code=code))

    def _involuntary(self, code, sid, end) -> bool:
        if code == "payment_failed":
            return True
        charged = [(at, status, attempts) for at, status, attempts in self.invoices[sid]
                   if at <= end and (status in ("paid", "uncollectible") or (status == "open" and attempts > 0))]
        if not charged:
            return False
        last_at = max(at for at, _, _ in charged)
        return any(at == last_at and status != "paid" for at, status, _ in charged)

    def mrr_at(self, sid, mrr, t):
        ch = self.changes.get(sid, [])
        before = [c for c in ch if c[0] <= t]
        if before:
            return before[-1][2]
        if ch:
            return ch[0][1]
        return mrr

    @staticmethod
    def active(spell, t):
        return spell["start"] <= t and (spell["end"] is None or spell["end"] > t)

    def retention(self, period: Period) -> dict:
        t0, t1 = _naive(period.start), _naive(period.end)
        by_cust = defaultdict(list)
        for sp in self.spells:
            by_cust[sp["key"]].append(sp)
        out = defaultdict(int)
        money = defaultdict(lambda: defaultdict(int))
        for key, spells in by_cust.items():
            s = any(self.active(x, t0) for x in spells)
            e = any(self.active(x, t1) for x in spells)
            pool = min(x["start"] for x in spells) < t0 and not s
            out["start_customers"] += s
            out["end_customers"] += e
            out["new_customers"] += e and not s
            out["reactivated_customers"] += e and pool
            out["reactivation_pool"] += pool
            if s and not e:
                out["lost_customers"] += 1
                ending = [x for x in spells if x["end"] is not None and t0 < x["end"] <= t1]
                last_end = max(x["end"] for x in ending)
                out["involuntary_lost"] += any(x["involuntary"] for x in ending if x["end"] == last_end)
            ms, me = defaultdict(int), defaultdict(int)
            for x in spells:
                if self.active(x, t0):
                    ms[x["cur"]] += self.mrr_at(x["sid"], x["mrr"], t0)
                if self.active(x, t1):
                    me[x["cur"]] += self.mrr_at(x["sid"], x["mrr"], t1)
            for cur in set(ms) | set(me):
                m = money[cur]
                if s:
                    m["start_mrr"] += ms[cur]
                    m["retained_mrr"] += me[cur]
                if s and not e:
                    m["lost_mrr"] += ms[cur]
                if s and e:
                    m["expansion_mrr"] += max(me[cur] - ms[cur], 0)
                    m["contraction_mrr"] += max(ms[cur] - me[cur], 0)
                if e:
                    m["end_mrr"] += me[cur]
        return {"counts": dict(out), "money": {c: dict(v) for c, v in money.items()}}


@pytest.fixture(scope="module")
def reference(generated):
    return Reference(generated["history"])


@pytest.mark.parametrize("label", ["2024-Q3", "2024-Q4", "2025-03", "2025"])
def test_retention_matches_the_reference(generated_con, reference, label):
    period = parse_period(label)
    [got] = metrics.retention(generated_con, period)
    want = reference.retention(period)
    for key, value in want["counts"].items():
        assert got[key] == value, key
    assert got["start_customers"] > 300 and got["lost_customers"] > 10
    for cur, values in want["money"].items():
        for key, value in values.items():
            assert got["mrr"][cur][key] == value, (cur, key)
    assert set(got["mrr"]) == set(want["money"])


def test_cached_spells_give_the_same_numbers(generated_con):
    spells = metrics.paid_spells(generated_con).cache()
    try:
        for by in (None, "plan", "cohort"):
            assert metrics.retention(generated_con, "2024-Q4", by=by, spells=spells) == \
                metrics.retention(generated_con, "2024-Q4", by=by)
        assert metrics.churn_by_reason(generated_con, "2025-Q2", spells=spells) == \
            metrics.churn_by_reason(generated_con, "2025-Q2")
    finally:
        spells.release()


# ------------------------------------------------------------------------- ground truth

@pytest.fixture(scope="module")
def truth(generated):
    return pq.read_table(generated["saas"] / "ground_truth.parquet")


def test_customers_at_the_end_match_ground_truth(generated_con, truth):
    period = Period("to the end", OBSERVATION_END - dt.timedelta(days=90), OBSERVATION_END)
    [r] = metrics.retention(generated_con, period)
    lifecycle = truth.column("lifecycle").to_pylist()
    assert r["end_customers"] == lifecycle.count("active") + lifecycle.count("past_due")


def test_groups_add_up(generated_con):
    [total] = metrics.retention(generated_con, "2025-Q1")
    for by in ("plan", "cohort"):
        rows = metrics.retention(generated_con, "2025-Q1", by=by)
        assert len(rows) > 3
        for key in metrics.COUNT_KEYS:
            assert sum(r[key] for r in rows) == total[key], (by, key)
        for key in metrics.MRR_KEYS:
            assert sum(r["mrr"].get("USD", {}).get(key, 0) for r in rows) == total["mrr"]["USD"][key], (by, key)


def test_price_increase_shows_in_price_churn(generated_con):
    def price_lost(label):
        rows = {r["reason"]: r for r in metrics.churn_by_reason(generated_con, label)}
        return rows.get("price", {}).get("lost_customers", 0)

    q3, q4 = price_lost("2024-Q3"), price_lost("2024-Q4")
    assert q4 > 3 * max(q3, 1), (q3, q4)


def test_involuntary_share_is_realistic(generated_con):
    [r] = metrics.retention(generated_con, "2025")
    assert 20 <= r["involuntary_share"] <= 40
    rows = {x["reason"]: x for x in metrics.churn_by_reason(generated_con, "2025")}
    assert rows["involuntary"]["lost_customers"] == r["involuntary_lost"]
    assert sum(x["lost_customers"] for x in rows.values()) == r["lost_customers"]
    assert sum(x["lost_mrr"]["USD"] for x in rows.values()) == r["mrr"]["USD"]["lost_mrr"]
    assert set(rows) <= set(CANCEL_CODE_REASONS.values()) | {"unknown"}


def test_involuntary_spells_match_lost_invoices(generated_con, generated):
    import json

    facts = json.loads((generated["saas"] / "ground_truth.json").read_text())
    spells = metrics.paid_spells(generated_con)
    spells = spells.filter((spells.source == "saas") & spells.involuntary)
    assert spells.count().execute() == facts["failed_payments_lost"]


def test_lost_mrr_over_time_sums_to_churn(generated_con):
    rows = metrics.lost_mrr_over_time(generated_con, "2025-01", "2025-03", "month")
    months = metrics.retention_series(generated_con, "2025-01", "2025-03", "month")
    for m in months:
        lost = [r for r in rows if r["period"] == m["period"]]
        assert sum(r["lost_customers"] for r in lost) == m["lost_customers"]
        assert sum(r["lost_mrr"].get("USD", 0) for r in lost) == m["mrr"]["USD"]["lost_mrr"]


# ------------------------------------------------------------------------- cohorts, tenure, RFM

def test_cohort_matrix_on_generated(generated_con, reference):
    table = cohort_matrix(generated_con, OBSERVATION_END)
    assert (pc.equal(table.column("age"), 0).to_numpy(zero_copy_only=False)
            <= (table.column("retention").to_numpy() == 1.0)).all()
    assert (table.column("active").to_numpy() <= table.column("customers").to_numpy()).all()
    # the 2024-01 cohort, by hand from the reference spells
    rows = [r for r in table.to_pylist() if r["cohort"] == "2024-01"]
    by_cust = defaultdict(list)
    for sp in reference.spells:
        by_cust[sp["key"]].append(sp)
    members = [k for k, v in by_cust.items() if min(x["start"] for x in v).strftime("%Y-%m") == "2024-01"]
    assert rows[0]["customers"] == len(members)
    for r in rows[:13]:
        month = dt.datetime(2024 + r["age"] // 12, r["age"] % 12 + 1, 1)
        nxt = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1)
        active = sum(any(x["start"] < nxt and (x["end"] is None or x["end"] > month) for x in by_cust[k])
                     for k in members)
        assert r["active"] == active, r["age"]
    assert rows[12]["retention"] < 0.9


def test_tenure_on_generated(generated_con, reference):
    table = tenure(generated_con, OBSERVATION_END)
    assert table.num_rows == len({sp["key"] for sp in reference.spells})
    assert (table.column("duration_days").to_numpy() > 0).all()
    fits = km_by(generated_con, OBSERVATION_END, by="plan")
    assert set(fits) == {"plan_starter", "plan_pro", "plan_business", "plan_enterprise"}
    # the generator's churn hazard falls with tier: enterprise outlives starter
    assert fits["plan_enterprise"].survival_at(365) > fits["plan_starter"].survival_at(365)


def test_rfm_orders_match_ground_truth(generated_con, generated):
    table = rfm_table(generated_con, OBSERVATION_END, kind="orders")
    assert set(table.column("source").to_pylist()) == {"shop"}
    truth = pq.read_table(generated["shop"] / "ground_truth.parquet")
    spent = dict(zip(truth.column("customer_id").to_pylist(), truth.column("total_spent").to_pylist()))
    got = dict(zip(table.column("customer_id").to_pylist(), table.column("monetary_minor").to_pylist()))
    assert len(got) > 100
    assert got == {k: v for k, v in spent.items() if v > 0}
    assert (table.column("recency_days").to_numpy() >= 0).all()
    scores = rfm_scores(table.column("recency_days"), table.column("frequency"), table.column("monetary_minor"))
    names = rfm_segments(scores.r, scores.f, scores.m)
    assert "unmatched" not in set(names) and len(set(names)) >= 6


def test_rfm_invoices_count_paid_invoices(generated_con, generated):
    table = rfm_table(generated_con, OBSERVATION_END, kind="invoices")
    con = duckdb.connect(str(generated["history"]), read_only=True)
    try:
        n_paid, total = con.execute("SELECT count(*), sum(amount_paid) FROM invoices WHERE status = 'paid'").fetchone()
    finally:
        con.close()
    assert int(np.sum(table.column("frequency").to_numpy())) == n_paid
    assert int(np.sum(table.column("monetary_minor").to_numpy())) == total

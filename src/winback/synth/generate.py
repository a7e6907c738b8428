"""``generate()``: write a realistic dataset plus its ground truth into a folder.

Output (``out_dir``): one ``<table>.<ext>`` per table of the kind, columns exactly as the table
specs in :mod:`winback.models.history`; ``ground_truth.parquet`` with one row per customer; and
``ground_truth.json`` with the summary (``GenerateResult.summary()`` without the timing).

History lies between 2023-01-01 and ``observation_end`` 00:00 UTC (inclusive); only
``future_ok`` columns (trial ends, period ends, a planned release) may lie later.

Ground truth columns (both kinds unless noted):

* ``customer_id``, ``churned`` (lost by the observation end), ``churned_at``;
* ``true_reason``: price | missing_feature | usability | support | competitor | other |
  involuntary, for the latest cancellation (also set when a SaaS cancellation is scheduled for
  after the observation end, see ``cancel_scheduled``); null otherwise;
* ``persona`` (e-commerce: bouncer, passive_browser, cart_abandoner, one_time_low_aov,
  one_time_high_aov, repeat_buyer; null for SaaS, whose ``lifecycle`` says prospect_abandoned,
  prospect_declined, trialing, trial_lost, active, past_due or churned);
* ``requested_feature`` (SaaS: e.g. ``integration_x``);
* ``p_return_<offer>`` for none, discount, lower_tier, annual_incentive, pause, extended_trial,
  expert_session, account_credit, feature_announcement, payment_update: the true probability of
  returning under that offer (model in :mod:`winback.synth.truth`). SaaS: set for lost customers
  (churned, trial_lost, prospects), null for live ones. E-commerce: set for everyone (probability
  of a purchase within 90 days of the offer);
* ``comment_reason``: the reason the customer's free text (exit comment, cancellation comment)
  actually expresses; it differs from ``true_reason`` for ~5% on purpose;
* SaaS extras: ``stated_reason`` (the cancellation feedback code / survey choice given, ~10%
  noisy), ``plan_id``, ``mrr`` (last MRR, cents), ``paid_months``, ``reactivated``,
  ``reactivated_at``, ``previous_reason`` / ``previous_churned_at`` / ``previous_comment_reason``
  (the churn before a reactivation), ``engagement_decaying`` (at risk), ``card_expiring_soon``;
* E-commerce extras: ``purchase_rate_per_week`` (BG/NBD lambda), ``dropout_probability`` (p),
  ``orders``, ``total_spent``, ``favourite_category``, ``last_category``, ``declined_at_checkout``.
"""

from __future__ import annotations

import datetime as dt
import json
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from winback.synth.arrays import START, seconds
from winback.synth.writer import EXTENSIONS, TableWriter

KINDS = ("saas", "ecommerce")
FORMATS = tuple(EXTENSIONS)
EARLIEST_END = dt.date(2023, 3, 1)
LATEST_END = dt.date(2094, 12, 31)  # card expiry years (up to 5 years ahead) must stay <= 2100
MAX_CUSTOMERS = 50_000_000
GROUND_TRUTH_PARQUET = "ground_truth.parquet"
GROUND_TRUTH_JSON = "ground_truth.json"


@dataclass
class GenerateResult:
    kind: str
    customers: int
    seed: int
    fmt: str
    observation_end: dt.date
    files: dict[str, Path]
    rows: dict[str, int]
    ground_truth: Path
    seconds: float
    facts: dict = field(default_factory=dict, repr=False)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> dict:
        """JSON-able facts about the dataset (row counts, churn, reasons, model parameters ...)."""
        out = {
            "kind": self.kind,
            "customers": self.customers,
            "seed": self.seed,
            "format": self.fmt,
            "observation_end": self.observation_end.isoformat(),
            "rows": dict(self.rows),
            "total_rows": self.total_rows,
            "seconds": round(self.seconds, 3),
        }
        out.update(self.facts)
        return out


def generate(kind: str, customers: int, seed: int, out_dir: Path, fmt: str = "csv",
             observation_end: dt.date = dt.date(2025, 12, 31),
             progress: Callable[[str], None] | None = None) -> GenerateResult:
    """Generate ``customers`` customers of a ``kind`` business into ``out_dir`` as ``fmt`` files.

    Writes one ``<table>.<ext>`` per table of the kind (columns exactly as the table spec in
    :mod:`winback.models.history`), ``ground_truth.parquet`` (one row per customer) and
    ``ground_truth.json`` (the summary). Same arguments give byte-identical files.
    """
    _check(kind, customers, seed, fmt, observation_end)
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous_dataset(out_dir)
    horizon = seconds(observation_end)
    if kind == "saas":
        from winback.synth import saas as model
    else:
        from winback.synth import ecommerce as model
    writer = TableWriter(out_dir, fmt, progress)
    try:
        tables, truth_table, facts = model.build(int(customers), int(seed), horizon, progress, writer.submit)
    except BaseException:
        writer.abort()
        raise
    written = writer.finish()
    files = {name: written[name] for name in tables}
    rows = {name: tables[name].num_rows for name in tables}
    truth_path = out_dir / GROUND_TRUTH_PARQUET
    tmp = truth_path.with_name(truth_path.name + ".tmp")
    pq.write_table(truth_table, tmp, compression="zstd")
    tmp.replace(truth_path)
    result = GenerateResult(kind=kind, customers=int(customers), seed=int(seed), fmt=fmt,
                            observation_end=observation_end, files=files, rows=rows, ground_truth=truth_path,
                            seconds=0.0, facts=facts)
    summary = result.summary()
    summary.pop("seconds")  # keep the file byte-identical between runs
    summary["ground_truth_columns"] = truth_table.column_names
    json_path = out_dir / GROUND_TRUTH_JSON
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    result.seconds = time.perf_counter() - began
    if progress:
        progress(f"{kind}: {result.total_rows:,} rows in {result.seconds:.1f} s")
    return result


def _remove_previous_dataset(out_dir: Path) -> None:
    """Delete table files an earlier run left (any format), so a folder holds one dataset.

    Only files named exactly like a table or the ground truth are touched."""
    from winback.models.history import TABLES_BY_NAME

    names = {f"{t}.{ext}" for t in TABLES_BY_NAME for ext in ("csv", "parquet", "jsonl")}
    names |= {GROUND_TRUTH_PARQUET, GROUND_TRUTH_JSON}
    for path in out_dir.iterdir():
        if path.is_file() and path.name in names:
            path.unlink()


def _check(kind, customers, seed, fmt, observation_end) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if isinstance(customers, bool) or not isinstance(customers, numbers.Integral):
        raise ValueError(f"customers must be a whole number, got {customers!r}")
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if customers > MAX_CUSTOMERS:
        raise ValueError(f"customers must be at most {MAX_CUSTOMERS:,}, got {customers:,}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(observation_end, dt.datetime) or not isinstance(observation_end, dt.date):
        raise ValueError(f"observation_end must be a datetime.date, got {observation_end!r}")
    if observation_end < EARLIEST_END:
        raise ValueError(f"observation_end must be on or after {EARLIEST_END.isoformat()} "
                         f"(history starts {dt.datetime.fromtimestamp(START, dt.timezone.utc).date()})")
    if observation_end > LATEST_END:
        raise ValueError(f"observation_end must be on or before {LATEST_END.isoformat()}")

"""Churn risk: a gradient-boosted classifier on the behavioural features, trained and evaluated
with a time-based split, reported side by side with the simple health score.

Windows (``h`` = ``horizon_days``, default 90; ``T`` = ``as_of``):

* **train**: features as of ``T_train = T - 2h`` (:func:`winback.analytics.features.customer_features`
  reads nothing later), label = churned in ``(T_train, T_train + h]``, for the customers active
  at ``T_train``;
* **test**: the same as of ``T_test = T - h``, labels from ``(T_test, T]`` - the labels of the
  train window end where the test window starts, so no outcome is seen twice;
* **final**: the model is refitted on the test window (the latest labelled one) and predicts
  ``churn_risk`` for the customers active at ``T``.

Population and label (:func:`churn_labels`):

* ``subscriptions`` (the default when the history holds any): active at ``t`` = a paying spell
  (:mod:`winback.analytics.metrics` rules) is active at ``t``; churned = not active at ``t + h``
  (the "lost" of :func:`winback.analytics.metrics.retention` over ``[t, t + h)``);
* ``orders`` (shops): active at ``t`` = a completed order in ``(t - churn_orders_active_days, t]``;
  churned = no completed order in ``(t, t + h]``.

Model (:class:`CalibratedBoosting`): scikit-learn ``HistGradientBoostingClassifier`` (histogram
gradient boosting after LightGBM, Ke et al. 2017; it takes missing values natively, so "never
answered NPS" stays missing instead of being imputed) on :data:`MODEL_FEATURES`, plus the
calibration that helps on the training window: none, Platt scaling (Platt 1999) or isotonic
regression (Zadrozny & Elkan 2002), whichever has the lowest cross-validated Brier score on
out-of-fold predictions. Everything is seeded (``random_state=0``), so runs are repeatable.

Scale: a window with more than :data:`MAX_FIT_ROWS` customers is fitted on a seeded random sample
of that many (the classes keep their shares; the AUC of a booster barely moves past ~10^5 rows),
and permutation importances are measured on at most :data:`MAX_IMPORTANCE_ROWS` test customers.
The evaluation figures use the whole test window; predictions cover every active customer.

Report (all on the test window, the same customers for model and baseline):

* ``auc`` - area under the ROC curve (``sklearn.metrics.roc_auc_score``);
* ``brier`` - mean squared error of the probabilities (Brier 1950);
* ``ece`` - expected calibration error over 10 equal-width bins,
  ``ECE = sum_b (n_b / n) |mean(y in b) - mean(p in b)|`` (Naeini, Cooper & Hauskrecht 2015;
  Guo et al. 2017, eq. 3), with the ``reliability`` table behind it (per bin: ``lower, upper,
  customers, mean_predicted, observed_rate``);
* ``baseline_*`` - the same for the health score read as a risk, ``1 - health_score / 100``
  (:func:`winback.analytics.health.baseline_risk`);
* ``uncalibrated_*`` - the boosted model before calibration, to show what calibration did;
* ``feature_importance`` - the 10 largest permutation importances (mean fall of the test AUC when
  a feature's values are shuffled, 5 repeats; Breiman 2001).

Too little history (fewer than ``churn_min_events`` churn events - or non-churners - in either
window) raises :class:`InsufficientHistory` (a :class:`~winback.kit.errors.WinbackError`) saying
what was found; with ``raise_on_insufficient=False`` the result has ``model = None`` and the
reason instead, and callers fall back to the health score.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pyarrow as pa

from winback.analytics import calibration, metrics
from winback.analytics.features import KEY, customer_features, naive_utc
from winback.analytics.health import baseline_risk, health_scores
from winback.config import HealthSettings
from winback.kit.errors import WinbackError

POPULATIONS = ("subscriptions", "orders")
RANDOM_STATE = 0
MAX_FIT_ROWS = 120_000
OOF_FOLDS = 3  # booster fits for the out-of-fold probabilities the calibration is chosen on
MAX_IMPORTANCE_ROWS = 10_000
RELIABILITY_BINS = 10

#: numeric feature columns the model reads (booleans and instants enter as day counts)
MODEL_FEATURES = (
    "tenure_days", "mrr", "logins_30d", "login_baseline_per_day", "logins_vs_baseline", "feature_uses_30d",
    "feature_use_baseline_per_day", "feature_uses_vs_baseline", "distinct_features_30d",
    "distinct_features_baseline", "days_since_last_activity", "purchases", "days_since_last_purchase",
    "median_days_between_purchases", "open_tickets", "tickets_90d", "lowest_csat_90d", "latest_nps",
    "days_since_latest_nps", "days_until_card_expiry", "days_since_failed_payment", "days_until_cancel",
)
#: the engagement columns (product analytics), e.g. to measure a model without them
ENGAGEMENT_FEATURES = (
    "logins_30d", "login_baseline_per_day", "logins_vs_baseline", "feature_uses_30d", "feature_use_baseline_per_day",
    "feature_uses_vs_baseline", "distinct_features_30d", "distinct_features_baseline", "days_since_last_activity",
)


class InsufficientHistory(WinbackError):
    """Too few churn events (or too little history) to train and evaluate a churn-risk model."""


# ================================================================================ metrics

def reliability_table(y_true, p, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Equal-width bins on [0, 1] (the last one closed): customers, mean predicted, observed rate."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.clip(np.asarray(p, dtype=np.float64).reshape(-1), 0.0, 1.0)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        sel = index == b
        count = int(sel.sum())
        rows.append({"lower": b / bins, "upper": (b + 1) / bins, "customers": count,
                     "mean_predicted": float(p[sel].mean()) if count else None,
                     "observed_rate": float(y[sel].mean()) if count else None})
    return rows


def expected_calibration_error(y_true, p, bins: int = RELIABILITY_BINS) -> float:
    """``sum_b (n_b / n) |observed_rate_b - mean_predicted_b|`` over equal-width bins (Guo et al. 2017, eq. 3)."""
    p = np.clip(np.asarray(p, dtype=np.float64).reshape(-1), 0.0, 1.0)
    return calibration.expected_calibration_error(np.asarray(y_true, dtype=np.float64).reshape(-1), p, bins)


def _scores(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    return {"auc": float(roc_auc_score(y, p)), "brier": float(brier_score_loss(y, p)),
            "ece": expected_calibration_error(y, p), "reliability": reliability_table(y, p)}


# ================================================================================ labels

def _population(con, population: str | None, source: str | None) -> str:
    if population is not None:
        if population not in POPULATIONS:
            raise ValueError(f"unknown population {population!r}: expected one of {', '.join(POPULATIONS)}")
        return population
    subs = con.table("subscriptions")
    if source is not None:
        subs = subs.filter(subs.source == source)
    return "subscriptions" if int(subs.count().execute()) > 0 else "orders"


def _active_subscribers(con, t: dt.datetime, source: str | None):
    spells = metrics._spell_base(con)
    if source is not None:
        spells = spells.filter(spells.source == source)
    at = metrics._instant(t)
    live = spells.filter(metrics._active_at(spells, at))
    return live.select(*KEY).distinct()


def _orders_in(con, start: dt.datetime, end: dt.datetime, source: str | None):
    orders = con.table("orders")
    if source is not None:
        orders = orders.filter(orders.source == source)
    sel = orders.filter((orders.status == "completed") & (orders.ordered_at > metrics._instant(start))
                        & (orders.ordered_at <= metrics._instant(end)))
    return sel.select(*KEY).distinct()


def churn_labels(con, t: dt.datetime, horizon_days: int, *, population: str = "subscriptions",
                 settings: HealthSettings | None = None, source: str | None = None,
                 labelled: bool = True) -> pa.Table:
    """``source, customer_id, churned`` for the customers active at ``t`` (see the module docstring).

    With ``labelled=False`` only the population (``churned`` null): for predicting at ``as_of``.
    """
    s = settings or HealthSettings()
    t = naive_utc(t)
    end = t + dt.timedelta(days=horizon_days)
    if population == "subscriptions":
        active = _active_subscribers(con, t, source)
        later = _active_subscribers(con, end, source) if labelled else None
    elif population == "orders":
        active = _orders_in(con, t - dt.timedelta(days=s.churn_orders_active_days), t, source)
        later = _orders_in(con, t, end, source) if labelled else None
    else:
        raise ValueError(f"unknown population {population!r}: expected one of {', '.join(POPULATIONS)}")
    if later is None:
        out = active.mutate(churned=ibis.null("boolean"))
    else:
        stayed = later.mutate(_stayed=ibis.literal(True))
        j = active.left_join(stayed, KEY)
        j = j.drop([c for c in j.columns if c.endswith("_right")])
        out = j.select(*KEY, churned=~j._stayed.fill_null(False))
    table = out.to_pyarrow()
    table = pa.table({"source": table.column("source").cast(pa.string()),
                      "customer_id": table.column("customer_id").cast(pa.string()),
                      "churned": table.column("churned").cast(pa.bool_())})
    return table.sort_by([("source", "ascending"), ("customer_id", "ascending")])


def _with_labels(features: pa.Table, labels: pa.Table) -> pa.Table:
    """Inner join of features and labels on the customer key, in label order."""
    joined = labels.join(features, KEY, join_type="inner")
    return joined.sort_by([("source", "ascending"), ("customer_id", "ascending")])


# ================================================================================ the model

def feature_matrix(features: pa.Table, columns=MODEL_FEATURES) -> np.ndarray:
    """The model's input: ``columns`` of a features table as float64, NaN for missing."""
    out = np.empty((features.num_rows, len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        col = features.column(name)
        if pa.types.is_boolean(col.type):
            col = col.cast(pa.int8())
        out[:, j] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return out


def _boosted():
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(learning_rate=0.1, max_iter=100, max_leaf_nodes=15, min_samples_leaf=40,
                                          l2_regularization=1.0, early_stopping=False, random_state=RANDOM_STATE)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).reshape(-1, 1)


def _fit_calibrator(method: str, p: np.ndarray, y: np.ndarray):
    """A map from raw to calibrated probabilities: Platt (a logistic regression on the logit of the
    raw probability) or isotonic regression; ``none`` is the identity."""
    if method == "none":
        return None
    if method == "sigmoid":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p), y)
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)


def _apply_calibrator(calibrator, p: np.ndarray) -> np.ndarray:
    if calibrator is None:
        return p
    if hasattr(calibrator, "predict_proba"):
        return calibrator.predict_proba(_logit(p))[:, 1]
    return calibrator.predict(p)


SINGLE_THREAD_ROWS = 200_000


def _threads(rows: int):
    """One OpenMP thread below ``SINGLE_THREAD_ROWS`` rows: on small windows the booster's per-tree
    thread start-up costs more than it saves, and on a busy machine oversubscribed OpenMP threads
    made a 3,000-customer run ten times slower."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp") if rows < SINGLE_THREAD_ROWS else nullcontext()


class CalibratedBoosting:
    """Gradient boosting plus the calibration that helps, chosen on the training window only.

    ``fit``: out-of-fold probabilities of the booster (:data:`OOF_FOLDS` stratified folds), then each candidate
    calibration - none, Platt (sigmoid), isotonic - is scored by a 5-fold cross-validated Brier score
    on those out-of-fold probabilities; the best (ties: the simpler) is fitted on all of them and
    applied to a booster refitted on the whole window (as ``CalibratedClassifierCV(ensemble=False)``
    does for one method). Columns without a single value in the training window (e.g. billing
    columns in a shop) are left out.
    """

    def __init__(self) -> None:
        self.used_columns: np.ndarray | None = None
        self.booster = None
        self.calibrator = None
        self.calibration = "none"
        self.calibration_brier: dict[str, float] = {}

    def fit(self, x: np.ndarray, y: np.ndarray) -> "CalibratedBoosting":
        with _threads(x.shape[0]):
            return self._fit(x, y)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> "CalibratedBoosting":
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        self.used_columns = np.flatnonzero(~np.isnan(x).all(axis=0))
        if self.used_columns.size == 0:
            raise InsufficientHistory("too little history for a churn-risk model: no feature has a value")
        x = x[:, self.used_columns]
        oof = cross_val_predict(_boosted(), x, y, method="predict_proba",
                                cv=StratifiedKFold(n_splits=OOF_FOLDS, shuffle=True, random_state=RANDOM_STATE))[:, 1]
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=RANDOM_STATE)
        scores = {}
        for method in ("none", "sigmoid", "isotonic"):
            errors = np.empty(y.size)
            for fit_idx, score_idx in folds.split(oof.reshape(-1, 1), y):
                calibrator = _fit_calibrator(method, oof[fit_idx], y[fit_idx])
                errors[score_idx] = (_apply_calibrator(calibrator, oof[score_idx]) - y[score_idx]) ** 2
            scores[method] = float(errors.mean())
        self.calibration_brier = scores
        self.calibration = min(scores, key=lambda m: (round(scores[m], 6), ("none", "sigmoid", "isotonic").index(m)))
        self.calibrator = _fit_calibrator(self.calibration, oof, y)
        self.booster = _boosted().fit(x, y)
        return self

    def uncalibrated(self, x: np.ndarray) -> np.ndarray:
        """The booster's own probability of churn."""
        with _threads(x.shape[0]):
            return self.booster.predict_proba(x[:, self.used_columns])[:, 1]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = _apply_calibrator(self.calibrator, self.uncalibrated(x))
        return np.column_stack([1.0 - p, p])


def sample_rows(y: np.ndarray, limit: int) -> np.ndarray:
    """Indices of a seeded random sample of at most ``limit`` rows, stratified by label (all rows when fewer)."""
    n = y.size
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(RANDOM_STATE)
    picked = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        take = max(int(round(limit * idx.size / n)), 1)
        picked.append(rng.choice(idx, size=min(take, idx.size), replace=False))
    return np.sort(np.concatenate(picked))


def permutation_importance_auc(model, x: np.ndarray, y: np.ndarray, columns, repeats: int = 5) -> list[dict]:
    """Mean (and standard deviation) fall of the AUC when one column is shuffled (Breiman 2001), by column."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(RANDOM_STATE)
    keep = sample_rows(y, MAX_IMPORTANCE_ROWS)
    x, y = x[keep], y[keep]
    reference = roc_auc_score(y, model.predict_proba(x)[:, 1])
    out = []
    for j, name in enumerate(columns):
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, j] = x[rng.permutation(x.shape[0]), j]
            drops.append(reference - roc_auc_score(y, model.predict_proba(shuffled)[:, 1]))
        out.append({"feature": name, "auc_drop": float(np.mean(drops)), "std": float(np.std(drops))})
    return sorted(out, key=lambda r: -r["auc_drop"])


@dataclass
class ChurnRiskResult:
    """A trained churn-risk model (or ``None`` with ``reason``), its report and current predictions."""

    model: Any | None
    report: dict
    feature_columns: tuple[str, ...] = MODEL_FEATURES
    predictions: pa.Table | None = None  # source, customer_id, churn_risk for customers active at as_of
    reason: str | None = None
    settings: HealthSettings = field(default_factory=HealthSettings)

    def predict(self, features: pa.Table) -> np.ndarray:
        """P(churn within the horizon) for every row of a :func:`customer_features` table."""
        if self.model is None:
            raise WinbackError(f"no churn-risk model: {self.reason}")
        if features.num_rows == 0:
            return np.zeros(0)
        return self.model.predict_proba(feature_matrix(features, self.feature_columns))[:, 1]


def _check(name: str, t: dt.datetime, labels: np.ndarray, minimum: int) -> None:
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
    if positives < minimum or negatives < minimum:
        raise InsufficientHistory(
            f"too little history for a churn-risk model: the {name} window (customers active at "
            f"{t:%Y-%m-%d}) has {positives} churn event(s) and {negatives} non-churner(s) among "
            f"{labels.size} customers; at least {minimum} of each are needed (health.churn_min_events)")


def train_and_evaluate(con, as_of: dt.datetime, horizon_days: int | None = None,
                       settings: HealthSettings | None = None, *, source: str | None = None,
                       population: str | None = None, feature_columns=MODEL_FEATURES,
                       raise_on_insufficient: bool = True,
                       current_features: pa.Table | None = None) -> ChurnRiskResult:
    """Train on ``T - 2h``, evaluate on ``T - h`` against the health score, refit on ``T - h`` and
    predict for the customers active at ``as_of`` (see the module docstring).

    ``settings``: a :class:`~winback.config.HealthSettings` (horizon and minimum events default
    from it); ``source`` limits everything to one source; ``population``: ``subscriptions`` |
    ``orders`` | None (subscriptions when the history holds any); ``current_features``: the
    :func:`customer_features` table as of ``as_of`` (same source and settings) when the caller
    already has it.
    """
    s = settings or HealthSettings()
    h = int(horizon_days or s.churn_horizon_days)
    t = naive_utc(as_of)
    t_train, t_test = t - dt.timedelta(days=2 * h), t - dt.timedelta(days=h)
    columns = tuple(feature_columns)
    unknown = set(columns) - set(MODEL_FEATURES)
    if unknown:
        raise ValueError(f"unknown feature column(s): {', '.join(sorted(unknown))}")
    kind = _population(con, population, source)
    head = {"as_of": t.isoformat(), "horizon_days": h, "population": kind, "source": source,
            "t_train": t_train.isoformat(), "t_test": t_test.isoformat()}

    def windows(at: dt.datetime) -> pa.Table:
        labels = churn_labels(con, at, h, population=kind, settings=s, source=source)
        return _with_labels(customer_features(con, at, source=source, settings=s), labels)

    train, test = windows(t_train), windows(t_test)
    y_train = train.column("churned").to_numpy(zero_copy_only=False).astype(np.int64)
    y_test = test.column("churned").to_numpy(zero_copy_only=False).astype(np.int64)
    try:
        _check("train", t_train, y_train, s.churn_min_events)
        _check("test", t_test, y_test, s.churn_min_events)
    except InsufficientHistory as exc:
        if raise_on_insufficient:
            raise
        report = {**head, "n_train": train.num_rows, "n_test": test.num_rows,
                  "positives": {"train": int(y_train.sum()), "test": int(y_test.sum())}, "error": str(exc)}
        return ChurnRiskResult(None, report, columns, None, str(exc), s)

    x_train, x_test = feature_matrix(train, columns), feature_matrix(test, columns)
    fit_rows = sample_rows(y_train, MAX_FIT_ROWS)
    model = CalibratedBoosting().fit(x_train[fit_rows], y_train[fit_rows])
    p_test = model.predict_proba(x_test)[:, 1]
    p_raw = model.uncalibrated(x_test)
    risk = baseline_risk(health_scores(test, s).column("health_score").to_numpy())

    result = _scores(y_test, p_test)
    base = _scores(y_test, risk)
    raw = _scores(y_test, p_raw)
    report = {
        **head,
        "n_train": int(y_train.size), "n_test": int(y_test.size), "n_fit": int(fit_rows.size),
        "positives": {"train": int(y_train.sum()), "test": int(y_test.sum())},
        "base_rate_test": float(y_test.mean()),
        "model": "HistGradientBoostingClassifier", "calibration": model.calibration,
        "calibration_cv_brier": model.calibration_brier,
        **result,
        "baseline_auc": base["auc"], "baseline_brier": base["brier"], "baseline_ece": base["ece"],
        "baseline_reliability": base["reliability"],
        "uncalibrated_auc": raw["auc"], "uncalibrated_brier": raw["brier"], "uncalibrated_ece": raw["ece"],
        "feature_importance": permutation_importance_auc(model, x_test, y_test, columns, repeats=3)[:10],
    }

    # refit on the latest labelled window, predict for the customers active now
    refit_rows = sample_rows(y_test, MAX_FIT_ROWS)
    final = CalibratedBoosting().fit(x_test[refit_rows], y_test[refit_rows])
    report["final_calibration"] = final.calibration
    current = churn_labels(con, t, h, population=kind, settings=s, source=source, labelled=False)
    if current_features is None:
        current_features = customer_features(con, t, source=source, settings=s)
    now = _with_labels(current_features, current.select(KEY))
    p_now = final.predict_proba(feature_matrix(now, columns))[:, 1] if now.num_rows else np.zeros(0)
    predictions = pa.table({"source": now.column("source"), "customer_id": now.column("customer_id"),
                            "churn_risk": pa.array(p_now, pa.float64())})
    report["n_predicted"] = predictions.num_rows
    return ChurnRiskResult(final, report, columns, predictions, None, s)

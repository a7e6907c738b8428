"""Calibration figures for probability models: expected calibration error and reliability tables.

Shared by the churn-risk model, the win-back propensity model and the reason classifier.
"""

from __future__ import annotations

import numpy as np


def expected_calibration_error(y, p, bins: int = 10, strategy: str = "uniform") -> float:
    """ECE = sum over bins of (bin share) x |mean predicted - observed rate|.

    ``strategy="uniform"``: ``bins`` equal-width bins on [0, 1] (Naeini et al. 2015, Guo et al.
    2017); ``"quantile"``: equal-mass bins of the predictions.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.size == 0:
        return float("nan")
    idx = _bin_index(p, bins, strategy)
    total = 0.0
    for b in np.unique(idx):
        sel = idx == b
        total += sel.sum() / y.size * abs(p[sel].mean() - y[sel].mean())
    return float(total)


def _bin_index(p: np.ndarray, bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return np.minimum((p * bins).astype(np.int64), bins - 1)
    if strategy == "quantile":
        order = np.argsort(p, kind="stable")
        idx = np.empty(p.size, dtype=np.int64)
        idx[order] = np.arange(p.size) * bins // max(p.size, 1)
        return idx
    raise ValueError(f"unknown binning strategy {strategy!r}: expected 'uniform' or 'quantile'")


def reliability_table(y, p, bins: int = 10, strategy: str = "quantile") -> list[dict]:
    """Per bin: ``bin, n, mean_predicted, observed_rate, low, high`` (the predictions' range)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    idx = _bin_index(p, bins, strategy)
    rows = []
    for b in np.unique(idx):
        sel = idx == b
        rows.append({"bin": int(b), "n": int(sel.sum()), "mean_predicted": float(p[sel].mean()),
                     "observed_rate": float(y[sel].mean()), "low": float(p[sel].min()), "high": float(p[sel].max())})
    return rows



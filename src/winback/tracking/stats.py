"""Experiment and holdout statistics (pure: NumPy/SciPy, no I/O).

* :func:`two_proportion_test` - pooled two-sided z test of p1 = p2 (its square equals Pearson's
  chi-square of the 2x2 table without continuity correction), with the Newcombe interval;
* :func:`rate_diff_ci` - Newcombe's hybrid score interval for a difference of proportions
  (method 10 of Newcombe 1998, Statistics in Medicine 17:873-890): Wilson score limits of each
  proportion combined by the square-and-add rule. Good coverage at small counts and 0 or n;
* :func:`mean_diff_ci` - Welch's interval for a difference of means (revenue per customer);
* :func:`prob_best` - Bayesian P(arm is best) under Beta(1 + x, 1 + n - x) posteriors: exact for
  two arms (Evan Miller's closed form, a finite sum of Beta functions), Monte Carlo with a fixed
  seed for more;
* :func:`srm_check` - sample-ratio mismatch: chi-square goodness of fit of the arm sizes against
  the configured shares; ``mismatch`` when p < 0.001 (the usual SRM threshold);
* :func:`holdout_lift` - treatment vs holdout: rate lift with its interval, incremental conversions
  and revenue (scaled to the treated population) with Welch's interval;
* :func:`roi` - (incremental revenue - cost) / cost.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import special, stats

SRM_ALPHA = 0.001


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _check_counts(x: int, n: int) -> None:
    if n < 0 or x < 0 or x > n:
        raise ValueError(f"need 0 <= successes <= trials, got {x} of {n}")


def wilson_ci(x: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion x/n."""
    _check_counts(x, n)
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = x / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_diff_ci(x_t: int, n_t: int, x_h: int, n_h: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval (method 10) for p_t - p_h; ``None`` when an arm is empty."""
    _check_counts(x_t, n_t)
    _check_counts(x_h, n_h)
    if n_t == 0 or n_h == 0:
        return None
    p1, p2 = x_t / n_t, x_h / n_h
    l1, u1 = wilson_ci(x_t, n_t, confidence)
    l2, u2 = wilson_ci(x_h, n_h, confidence)
    d = p1 - p2
    delta = math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    eps = math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, d - delta), min(1.0, d + eps))


def two_proportion_test(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> dict:
    """Pooled two-sided z test of p1 = p2: ``{z, p_value, diff, ci}`` (``ci``: Newcombe, p1 - p2)."""
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    if n1 == 0 or n2 == 0:
        return {"z": None, "p_value": None, "diff": None, "ci": None}
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = 0.0 if se == 0 else (p1 - p2) / se
    p_value = float(2 * stats.norm.sf(abs(z)))
    ci = rate_diff_ci(x1, n1, x2, n2, confidence)
    return {"z": z, "p_value": p_value, "diff": p1 - p2, "ci": list(ci) if ci else None}


def _p_b_beats_a(a_a: float, b_a: float, a_b: int, b_b: float) -> float:
    """P(X_B > X_A) for X_A ~ Beta(a_a, b_a), X_B ~ Beta(a_b, b_b) with integer a_b (Evan Miller)."""
    i = np.arange(int(a_b), dtype=float)
    log_terms = (special.betaln(a_a + i, b_a + b_b) - np.log(b_b + i) - special.betaln(1 + i, b_b)
                 - special.betaln(a_a, b_a))
    return float(np.clip(np.exp(special.logsumexp(log_terms)), 0.0, 1.0))


def prob_best(successes: Sequence[int], trials: Sequence[int], *, draws: int = 200_000, seed: int = 0) -> list[float]:
    """P(each arm has the highest rate) under independent Beta(1 + x, 1 + n - x) posteriors."""
    if len(successes) != len(trials):
        raise ValueError("successes and trials must have the same length")
    for x, n in zip(successes, trials):
        _check_counts(int(x), int(n))
    k = len(successes)
    if k == 0:
        return []
    if k == 1:
        return [1.0]
    alpha = [1 + int(x) for x in successes]
    beta = [1 + int(n) - int(x) for x, n in zip(successes, trials)]
    if k == 2:
        # exact: sum over the smaller integer shape parameter
        if alpha[1] <= alpha[0]:
            p1 = _p_b_beats_a(alpha[0], beta[0], alpha[1], beta[1])
            return [1.0 - p1, p1]
        p0 = _p_b_beats_a(alpha[1], beta[1], alpha[0], beta[0])
        return [p0, 1.0 - p0]
    rng = np.random.default_rng(seed)
    samples = np.column_stack([rng.beta(a, b, size=draws) for a, b in zip(alpha, beta)])
    wins = np.bincount(np.argmax(samples, axis=1), minlength=k)
    return [float(w) / draws for w in wins]


def srm_check(observed: Sequence[int], expected_shares: Sequence[float]) -> dict:
    """Sample-ratio mismatch: ``{chi2, p_value, mismatch}`` (mismatch: p < 0.001)."""
    if len(observed) != len(expected_shares) or not observed:
        raise ValueError("observed counts and expected shares must have the same, non-zero length")
    shares = np.asarray(expected_shares, dtype=float)
    if np.any(shares <= 0):
        raise ValueError("expected shares must be positive")
    obs = np.asarray(observed, dtype=float)
    total = obs.sum()
    if total == 0 or len(obs) == 1:
        return {"chi2": 0.0, "p_value": 1.0, "mismatch": False}
    expected = total * shares / shares.sum()
    chi2, p = stats.chisquare(obs, expected)
    return {"chi2": float(chi2), "p_value": float(p), "mismatch": bool(p < SRM_ALPHA)}


def welch(n1: int, mean1: float, var1: float, n2: int, mean2: float, var2: float,
          confidence: float = 0.95) -> dict | None:
    """Welch's t interval for mean1 - mean2 from summary statistics (sample variances, ddof=1)."""
    if n1 < 2 or n2 < 2:
        return None
    diff = mean1 - mean2
    v1, v2 = var1 / n1, var2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return {"diff": diff, "se": 0.0, "df": float(n1 + n2 - 2), "ci": (diff, diff)}
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    t = float(stats.t.ppf(0.5 + confidence / 2.0, df))
    return {"diff": diff, "se": se, "df": df, "ci": (diff - t * se, diff + t * se)}


def mean_diff_ci(values_t: Sequence[float], values_h: Sequence[float],
                 confidence: float = 0.95) -> tuple[float, float] | None:
    """Welch's interval for mean(values_t) - mean(values_h); ``None`` with fewer than 2 values in an arm."""
    a = np.asarray(values_t, dtype=float)
    b = np.asarray(values_h, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return None
    w = welch(len(a), float(a.mean()), float(a.var(ddof=1)), len(b), float(b.mean()), float(b.var(ddof=1)),
              confidence)
    return w["ci"] if w else None


def roi(incremental_revenue: float, offer_cost: float, sending_cost: float) -> float | None:
    """(incremental revenue - offer cost - sending cost) / (offer cost + sending cost); ``None`` at zero cost."""
    cost = (offer_cost or 0) + (sending_cost or 0)
    if cost <= 0:
        return None
    return (incremental_revenue - cost) / cost


def _arm(n: int, conversions: int, revenue: Sequence[float] | np.ndarray) -> dict:
    return {"n": int(n), "conversions": int(conversions), "revenue_minor": int(round(float(np.sum(revenue)))),
            "rate": (conversions / n) if n else None}


def holdout_lift(conv_t: int, revenue_t: Sequence[float], conv_h: int, revenue_h: Sequence[float],
                 confidence: float = 0.95) -> dict:
    """Treatment vs holdout. ``revenue_*`` has one value per enrolled customer (0 when none).

    ``lift.rate`` = p_t - p_h with Newcombe's interval; ``incremental_conversions`` =
    (p_t - p_h) x n_t; ``incremental_revenue_minor`` = (mean_t - mean_h) x n_t with Welch's
    interval scaled by n_t. Fields are ``None`` when an arm is empty."""
    rt = np.asarray(revenue_t, dtype=float)
    rh = np.asarray(revenue_h, dtype=float)
    n_t, n_h = len(rt), len(rh)
    out = {"treatment": _arm(n_t, conv_t, rt), "holdout": _arm(n_h, conv_h, rh)}
    if n_t == 0 or n_h == 0:
        out["lift"] = {"rate": None, "rate_ci": None, "incremental_conversions": None,
                       "incremental_revenue_minor": None, "incremental_revenue_ci_minor": None}
        return out
    diff = conv_t / n_t - conv_h / n_h
    ci = rate_diff_ci(conv_t, n_t, conv_h, n_h, confidence)
    mean_diff = float(rt.mean() - rh.mean())
    rev_ci = mean_diff_ci(rt, rh, confidence)
    out["lift"] = {
        "rate": diff, "rate_ci": list(ci) if ci else None,
        "incremental_conversions": diff * n_t,
        "incremental_revenue_minor": int(round(mean_diff * n_t)),
        "incremental_revenue_ci_minor": [int(round(rev_ci[0] * n_t)), int(round(rev_ci[1] * n_t))] if rev_ci else None,
    }
    return out

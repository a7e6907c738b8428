"""Vectorised simulators of the CLV models (for parameter-recovery tests and benchmarks).

Each draws per-customer latent traits from the mixing distributions and then the observable
summary statistics directly (no per-customer loop, no transaction log):

- purchases in (0, T] of a Poisson process given its count are uniform order statistics, so
  the time of the k-th of n purchases is T * Beta(k, n - k + 1);
- the mean of x Gamma(p, nu) transaction values is Gamma(p x, x nu).
"""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_bgnbd", "simulate_gamma_gamma", "simulate_pareto_nbd", "simulate_sbg"]


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _T(T, n: int) -> np.ndarray:
    T = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    if np.any(T < 0):
        raise ValueError("T must be non-negative")
    return T


def _last_of(count: np.ndarray, horizon: np.ndarray, rng: np.random.Generator, k: np.ndarray) -> np.ndarray:
    """Time of the k-th of ``count`` uniform points on (0, horizon) (0 where k = 0)."""
    out = np.zeros(count.shape[0])
    pos = k > 0
    out[pos] = horizon[pos] * rng.beta(k[pos], count[pos] - k[pos] + 1)
    return out


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, T, seed=None):
    """Draw (frequency, recency, T) of ``n`` customers from the BG/NBD model (FHL 2005).

    lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b); the customer drops out right after her J-th
    repeat purchase, J ~ Geometric(p); x = min(N(T), J) with N(T) ~ Poisson(lambda T).
    """
    rng = _rng(seed)
    T = _T(T, n)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    count = rng.poisson(lam * T)
    death = rng.geometric(np.clip(p, 1e-300, 1.0))
    x = np.minimum(count, death)
    recency = _last_of(count, T, rng, x)
    return x.astype(np.float64), recency, T


def simulate_pareto_nbd(n: int, r: float, alpha: float, s: float, beta: float, T, seed=None):
    """Draw (frequency, recency, T) of ``n`` customers from the Pareto/NBD model (SMC 1987).

    lambda ~ Gamma(r, rate alpha), mu ~ Gamma(s, rate beta), lifetime tau ~ Exponential(mu);
    purchases are Poisson(lambda) on (0, min(tau, T)].
    """
    rng = _rng(seed)
    T = _T(T, n)
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    with np.errstate(divide="ignore"):
        tau = rng.exponential(1.0 / mu)
    active = np.minimum(tau, T)
    count = rng.poisson(lam * active)
    recency = _last_of(count, active, rng, count)
    return count.astype(np.float64), recency, T


def simulate_gamma_gamma(frequency, p: float, q: float, gamma: float, seed=None) -> np.ndarray:
    """Mean value of each customer's ``frequency`` repeat transactions (0 where frequency is 0).

    nu ~ Gamma(q, rate gamma); transaction values ~ Gamma(p, rate nu); their mean over x
    transactions ~ Gamma(p x, rate x nu).
    """
    rng = _rng(seed)
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(q, 1.0 / gamma, x.shape[0])
    out = np.zeros(x.shape[0])
    pos = x > 0
    out[pos] = rng.gamma(p * x[pos], 1.0 / (x[pos] * nu[pos]))
    return out


def simulate_sbg(n: int, alpha: float, beta: float, periods: int, seed=None) -> np.ndarray:
    """Survivor counts active[0..periods] of a cohort of ``n`` from the sBG model (FH 2007):
    theta ~ Beta(alpha, beta), cancellation period T ~ Geometric(theta) on {1, 2, ...}."""
    rng = _rng(seed)
    theta = rng.beta(alpha, beta, n)
    churn = rng.geometric(np.clip(theta, 1e-300, 1.0))
    t = np.arange(periods + 1)
    counts = np.bincount(np.minimum(churn, periods + 1), minlength=periods + 2)
    # active at t = customers with churn period > t
    return n - np.cumsum(counts)[t]

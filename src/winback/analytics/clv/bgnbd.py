"""BG/NBD: the beta-geometric / negative binomial distribution model of repeat buying.

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "'Counting your customers' the easy
way: an alternative to the Pareto/NBD model", *Marketing Science* 24(2), 275-284 (FHL 2005).

Story: while active, a customer buys by a Poisson process with rate lambda ~ Gamma(r, alpha);
after every repeat purchase she becomes inactive with probability p ~ Beta(a, b). For a
customer with ``frequency`` x repeat purchases, the last at ``recency`` t_x, observed for
``T`` time units since the first purchase, the likelihood is (FHL 2005, Section 4)

    L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + 1{x>0} B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x)),

evaluated here in log space as in Fader, Hardie & Lee's note "Implementing the BG/NBD model
for customer base analysis in Excel" (2005, brucehardie.com note 004):
ln L = A1 + A2 + ln(e^A3 + 1{x>0} e^A4). Equation numbers below refer to FHL 2005.

Time is in whatever unit recency and T are given (days, weeks); ``alpha`` is in that unit.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from ._base import (
    FittedModel,
    broadcast_rft,
    check_rft,
    repeat_rate,
    dot,
    integer_codes,
    reshape_out,
    unique_rows,
)

__all__ = ["BetaGeoModel"]


class _Data:
    """Deduplicated BG/NBD sufficient statistics, arranged so that every transcendental
    function is evaluated once per distinct value (of x, of T, of t_x) where possible.

    ln L = A1 + A2 + A3 + softplus(A4 - A3) for x > 0 (A1 + A2 + A3 for x = 0), and
    A1 + A2 depend on x only, A3 = -(r+x) ln(alpha+T) sums by T; only the softplus needs a
    pass over the distinct rows with x > 0.
    """

    def __init__(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray):
        u = unique_rows([x, tx, T], w)
        ux, utx, uT = u.columns
        uw = u.weights
        self.n_unique = ux.shape[0]
        self.total = float(uw.sum())
        self.xv, xcode = integer_codes(ux)
        self.wx = np.bincount(xcode, weights=uw, minlength=self.xv.shape[0])
        # A3 over all rows, aggregated by T: sum_T ln(alpha+T) (r W_T + WX_T)
        self.Tall, tcode = integer_codes(uT)
        self.W_T = np.bincount(tcode, weights=uw, minlength=self.Tall.shape[0])
        self.WX_T = np.bincount(tcode, weights=uw * ux, minlength=self.Tall.shape[0])
        pos = ux > 0
        self.w = uw[pos]
        self.xs = ux[pos]
        self.xcode = xcode[pos]
        self.Tv, self.Tcode = integer_codes(uT[pos])
        self.txv, self.txcode = integer_codes(utx[pos])


def _x_terms(r, alpha, a, b, xv):
    """The parts of ln L that depend on x only (A1 + A2) and their partial derivatives."""
    value = (
        gammaln(r + xv) - gammaln(r) + r * np.log(alpha)
        + gammaln(a + b) + gammaln(b + xv) - gammaln(b) - gammaln(a + b + xv)
    )
    d_r = digamma(r + xv) - digamma(r) + np.log(alpha)
    d_alpha = np.full_like(xv, r / alpha)
    d_a = digamma(a + b) - digamma(a + b + xv)
    d_b = digamma(a + b) + digamma(b + xv) - digamma(b) - digamma(a + b + xv)
    return value, (d_r, d_alpha, d_a, d_b)


def _softplus(d: np.ndarray) -> np.ndarray:
    """ln(1 + e^d) without overflow."""
    out = np.exp(-np.abs(d))
    np.log1p(out, out=out)
    out += np.maximum(d, 0.0)
    return out


class BetaGeoModel(FittedModel):
    """BG/NBD model (FHL 2005), fitted by maximum likelihood on deduplicated statistics.

    >>> model = BetaGeoModel().fit(frequency, recency, T)
    >>> model.params_            # {'r': ..., 'alpha': ..., 'a': ..., 'b': ...}
    >>> model.probability_alive(frequency, recency, T)
    >>> model.expected_purchases(52, frequency, recency, T)

    ``penalizer`` adds ``penalizer * (r^2 + alpha^2 + a^2 + b^2)`` to the mean negative
    log-likelihood (lifetimes' convention, though lifetimes applies it to time-rescaled
    parameters, so penalised fits of the two libraries differ).
    """

    param_names = ("r", "alpha", "a", "b")

    # ------------------------------------------------------------------ fitting

    def fit(self, frequency, recency, T, weights=None, *, initial_params: dict | None = None):
        """Maximum-likelihood fit. ``weights`` are counts of customers per row (optional)."""
        x, tx, t, w = check_rft(frequency, recency, T, weights)
        data = _Data(x, tx, t, w)
        rate, _ = repeat_rate(x, t, w)
        return self._maximise(data, self._start(initial_params, lambda: [1.0, 1.0 / rate, 1.0, 3.0]))

    def _objective(self, theta, data: _Data, with_grad: bool, penalised: bool = True):
        p = np.exp(theta)
        r, alpha, a, b = p
        xval, xgrad = _x_terms(r, alpha, a, b, data.xv)
        lT_all = np.log(alpha + data.Tall)
        total = dot(data.wx, xval) - dot(lT_all, r * data.W_T + data.WX_T)
        if with_grad:
            g = np.array([dot(data.wx, dx) for dx in xgrad])
            g[0] -= dot(lT_all, data.W_T)
            g[1] -= dot(r * data.W_T + data.WX_T, 1.0 / (alpha + data.Tall))
        if data.w.shape[0]:
            # d = A4 - A3 = ln(a/(b+x-1)) + (r+x) ln((alpha+T)/(alpha+t_x))
            rx = data.xs + r
            delta = np.log(alpha + data.Tv)[data.Tcode]
            delta -= np.log(alpha + data.txv)[data.txcode]
            bx1 = b + np.maximum(data.xv, 1.0) - 1.0  # rows with x = 0 never use it
            c_x = np.log(a) - np.log(bx1)
            d = rx * delta
            d += c_x[data.xcode]
            sp = _softplus(d)
            total += dot(data.w, sp)
            if with_grad:
                ww4 = np.exp(d - sp)  # = expit(d): weight of "inactive after the last purchase"
                ww4 *= data.w
                g[0] += dot(ww4, delta)
                inv_diff = (1.0 / (alpha + data.Tv))[data.Tcode]
                inv_diff -= (1.0 / (alpha + data.txv))[data.txcode]
                g[1] += dot(ww4 * rx, inv_diff)
                g[2] += float(ww4.sum()) / a
                g[3] -= dot(np.bincount(data.xcode, weights=ww4, minlength=data.xv.shape[0]), 1.0 / bx1)
        value = -total / data.total
        if not penalised:
            return value
        pen, pen_grad = self._penalty(p)
        if not with_grad:
            return value + pen
        return value + pen, -g * p / data.total + pen_grad

    # ------------------------------------------------------------------ predictions

    def log_likelihood(self, frequency, recency, T):
        """Per-customer log-likelihood ln L(r, alpha, a, b | x, t_x, T) (module docstring)."""
        r, alpha, a, b = self._params()
        x, tx, t, shape = broadcast_rft(frequency, recency, T)
        A12 = (
            gammaln(r + x) - gammaln(r) + r * np.log(alpha)
            + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
        )
        A3 = -(r + x) * np.log(alpha + t)
        with np.errstate(divide="ignore", invalid="ignore"):
            A4 = np.where(x > 0, np.log(a) - np.log(b + x - 1.0) - (r + x) * np.log(alpha + tx), -np.inf)
        return reshape_out(A12 + np.logaddexp(A3, A4), shape)

    def probability_alive(self, frequency, recency, T):
        """P(active at T | x, t_x, T) = 1 / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

        Fader, Hardie & Lee (2008), "Computing P(alive) using the BG/NBD model" (note 021);
        evaluated as a logistic function of a log-odds, so it never overflows.
        """
        x, tx, t, shape = broadcast_rft(frequency, recency, T)
        return reshape_out(self._palive(x, tx, t), shape)

    def _palive(self, x, tx, t):
        r, alpha, a, b = self._params()
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds_dead = np.log(a) - np.log(b + x - 1.0) + (r + x) * np.log1p((t - tx) / (alpha + tx))
        return np.where(x > 0, expit(-log_odds_dead), 1.0)

    def expected_purchases(self, t, frequency, recency, T):
        """E[Y(t) | x, t_x, T]: expected repeat purchases in (T, T+t] (FHL 2005 eq. 10).

        Uses Euler's transformation 2F1(r+x, b+x; a+b+x-1; z) =
        (1-z)^(a-1-r-x) 2F1(a+b-1-r, a-1; a+b+x-1; z), so the factor ((alpha+T)/(alpha+T+t))^(r+x)
        cancels analytically and nothing overflows for large x - the "#NUM!" problem of Fader &
        Hardie (2013), "Overcoming the BG/NBD model's #NUM! error problem" (note 027).
        ``t`` may be a scalar or an array broadcastable against the customers.
        """
        x, tx, T_, shape = broadcast_rft(frequency, recency, T)
        tt = np.asarray(t, dtype=np.float64)
        if tt.ndim == 0:
            out = self._conditional(float(tt), x, tx, T_)
            return reshape_out(out, shape)
        tt, xb, txb, Tb = np.broadcast_arrays(tt, x.reshape(shape), tx.reshape(shape), T_.reshape(shape))
        out = self._conditional(tt.reshape(-1), xb.reshape(-1), txb.reshape(-1), Tb.reshape(-1))
        return out.reshape(tt.shape)

    def _conditional(self, t, x, tx, T):
        if np.any(np.asarray(t) < 0):
            raise ValueError("t must be non-negative")
        if np.ndim(t) == 0 and x.shape[0] > 20000:  # 2F1 once per distinct (x, T) pair
            pairs = unique_rows([x, T])
            return self._palive(x, tx, T) * self._growth(t, *pairs.columns)[pairs.inverse]
        return self._palive(x, tx, T) * self._growth(t, x, T)

    def _growth(self, t, x, T):
        """(a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]."""
        r, alpha, a, b = self._params()
        if abs(a - 1.0) < 1e-7:  # removable singularity at a = 1: average the two sides
            return 0.5 * (_growth(t, x, T, r, alpha, 1.0 - 1e-6, b) + _growth(t, x, T, r, alpha, 1.0 + 1e-6, b))
        return _growth(t, x, T, r, alpha, a, b)

    def _expected_purchases_grid(self, times: np.ndarray, x, tx, T) -> np.ndarray:
        """E[Y(t)] for several t at once, shape (len(times), n); the hypergeometric function is
        evaluated once per distinct (x, T) pair and time (used by customer_lifetime_value)."""
        x, tx, T, _ = broadcast_rft(x, tx, T)
        pairs = unique_rows([x, T])
        px, pT = pairs.columns
        palive = self._palive(x, tx, T)
        out = np.empty((len(times), x.shape[0]))
        for i, t in enumerate(times):
            out[i] = palive * self._growth(float(t), px, pT)[pairs.inverse]
        return out

    def expected_purchases_new(self, t):
        """E[X(t)]: expected repeat purchases of a new customer in (0, t] (FHL 2005 eq. 9)."""
        tt = np.asarray(t, dtype=np.float64)
        out = self._growth(tt.reshape(-1), np.zeros(tt.size), np.zeros(tt.size))
        return float(out[0]) if tt.ndim == 0 else out.reshape(tt.shape)


def _growth(t, x, T, r, alpha, a, b):
    t = np.asarray(t, dtype=np.float64)
    z = t / (alpha + T + t)
    log_1mz = -np.log1p(t / (alpha + T))
    c = a + b + x - 1.0
    F = hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = (F > 0) & np.isfinite(F)
        bracket = np.where(good, -np.expm1((a - 1.0) * log_1mz + np.log(np.where(good, F, 1.0))), np.nan)
        if not np.all(good):  # c <= 0 (a + b < 1 and x = 0): use the untransformed expression
            direct = 1.0 - np.exp((r + x) * log_1mz) * hyp2f1(r + x, b + x, c, z)
            bracket = np.where(good, bracket, direct)
    return c / (a - 1.0) * bracket

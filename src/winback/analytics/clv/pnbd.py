"""Pareto/NBD: the classic model of repeat buying with unobserved defection.

Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), "Counting your customers: who are
they and what will they do next?", *Management Science* 33(1), 1-24 (SMC 1987). Likelihood,
P(alive) and conditional expectation follow Fader, P. S. and Hardie, B. G. S. (2005), "A note
on deriving the Pareto/NBD model and related expressions" (brucehardie.com note 009, version of
November 2005; equation numbers below refer to it).

Story: while alive a customer buys by a Poisson process with rate lambda ~ Gamma(r, alpha);
her lifetime is exponential with rate mu ~ Gamma(s, beta). The likelihood (note eq. 18) is

    L = Gamma(r+x) alpha^r beta^s / Gamma(r)
        * [ 1 / ((alpha+T)^(r+x) (beta+T)^s) + s/(r+s+x) * A0 ],

with A0 (eqs. 19-20) a difference of two Gaussian hypergeometric terms. Those terms overflow
for large x or T when evaluated directly (the spreadsheet "#NUM!" problem). Here each is
rewritten with Euler's transformation 2F1(a, b; c; z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z),
which for these arguments (c = a + 1) gives

    2F1(r+s+x, s+1; r+s+x+1; z) = (1-z)^(-s)      2F1(1, r+x; r+s+x+1; z)   (alpha >= beta)
    2F1(r+s+x, r+x; r+s+x+1; z) = (1-z)^(1-r-x)  2F1(1, s+1; r+s+x+1; z)   (alpha <  beta)

The right-hand 2F1(1, b; c; z) with b < c and 0 <= z < 1 lies in [1, 1/(1-z)], so it is
evaluated by ``scipy.special.hyp2f1`` without overflow and everything else stays in log space:

    ln G(t) = -(r+x) ln(alpha+t) - s ln(beta+t) [+ ln((alpha+t)/(beta+t)) if alpha < beta] + ln 2F1(...)
    A0 = G(t_x) - G(T).

2F1 depends on a customer only through (x, t_x) or (x, T), so it is computed once per distinct
pair; with deduplicated customers this is what makes fitting a million customers fast.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, expit, gammaln

from ._base import (
    FittedModel,
    broadcast_rft,
    check_rft,
    repeat_rate,
    dot,
    integer_codes,
    matvec,
    reshape_out,
    unique_rows,
)
from ._special import dlog_hyp2f1_1bcz_dz, hyp2f1_1bcz, log1mexp

__all__ = ["ParetoNBDModel"]


def _hyp_args(r, alpha, s, beta, x, t):
    """(b, c, z) of the transformed 2F1(1, b; c; z) and the extra log term (module docstring)."""
    if alpha >= beta:
        return r + x, r + s + x + 1.0, (alpha - beta) / (alpha + t), 0.0
    return s + 1.0 + 0.0 * x, r + s + x + 1.0, (beta - alpha) / (beta + t), np.log(alpha + t) - np.log(beta + t)


def _log_G(r, alpha, s, beta, x, t):
    """ln G(t) for distinct (x, t) pairs (see the module docstring); G(t_x) - G(T) = A0."""
    b, c, z, extra = _hyp_args(r, alpha, s, beta, x, t)
    F = hyp2f1_1bcz(b, c, z)
    return -(r + x) * np.log(alpha + t) - s * np.log(beta + t) + extra + np.log(F)


def _log_G_grad(r, alpha, s, beta, x, t):
    """ln G(t) and its partial derivatives w.r.t. (r, alpha, s, beta), shape (4, n).

    d ln 2F1 / dz is ``dlog_hyp2f1_1bcz_dz``; the derivatives in b and c, which have no closed
    form, are central differences of the 2F1 (relative error ~1e-9), with steps kept well
    inside the gap c - b so that the function stays in its domain b < c.
    """
    b, c, z, extra = _hyp_args(r, alpha, s, beta, x, t)
    F = hyp2f1_1bcz(b, c, z)
    lnF = np.log(F)
    gap = c - b
    hb = np.minimum(1e-5 * np.maximum(1.0, b), 0.1 * gap)
    hc = np.minimum(1e-5 * np.maximum(1.0, c), 0.1 * gap)
    dF_db = (np.log(hyp2f1_1bcz(b + hb, c, z)) - np.log(hyp2f1_1bcz(b - hb, c, z))) / (2 * hb)
    dF_dc = (np.log(hyp2f1_1bcz(b, c + hc, z)) - np.log(hyp2f1_1bcz(b, c - hc, z))) / (2 * hc)
    dF_dz = dlog_hyp2f1_1bcz_dz(b, c, z, F)
    la = np.log(alpha + t)
    lb = np.log(beta + t)
    value = -(r + x) * la - s * lb + extra + lnF
    grad = np.empty((4,) + np.shape(value))
    if alpha >= beta:
        grad[0] = -la + dF_db + dF_dc
        grad[1] = -(r + x) / (alpha + t) + dF_dz * (beta + t) / (alpha + t) ** 2
        grad[2] = -lb + dF_dc
        grad[3] = -s / (beta + t) - dF_dz / (alpha + t)
    else:
        grad[0] = -la + dF_dc
        grad[1] = -(r + x) / (alpha + t) + 1.0 / (alpha + t) - dF_dz / (beta + t)
        grad[2] = -lb + dF_db + dF_dc
        grad[3] = -s / (beta + t) - 1.0 / (beta + t) + dF_dz * (alpha + t) / (beta + t) ** 2
    return value, grad


def _logaddexp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ln(e^a + e^b); faster than np.logaddexp, same result for finite or -inf inputs."""
    with np.errstate(invalid="ignore"):
        out = np.subtract(a, b)
    np.abs(out, out=out)
    out[np.isnan(out)] = np.inf  # both -inf
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(a, b)
    return out


class _Data:
    """Deduplicated rows plus the distinct (x, t_x) and (x, T) pairs the 2F1 terms need."""

    def __init__(self, x, tx, T, w):
        u = unique_rows([x, tx, T], w)
        self.x, self.tx, self.T = u.columns
        self.w = u.weights
        self.n_unique = self.x.shape[0]
        self.total = float(self.w.sum())
        self.xv, self.xcode = integer_codes(self.x)
        self.wx = np.bincount(self.xcode, weights=self.w, minlength=self.xv.shape[0])
        p1 = unique_rows([self.x, self.tx])
        p2 = unique_rows([self.x, self.T])
        self.p1x, self.p1t = p1.columns
        self.p1inv = p1.inverse
        self.p2x, self.p2t = p2.columns
        self.p2inv = p2.inverse
        self.p1xcode = np.searchsorted(self.xv, self.p1x)
        self.p2xcode = np.searchsorted(self.xv, self.p2x)


class ParetoNBDModel(FittedModel):
    """Pareto/NBD model (SMC 1987) with Fader & Hardie's (2005) stable likelihood.

    >>> model = ParetoNBDModel().fit(frequency, recency, T)
    >>> model.params_            # {'r': ..., 'alpha': ..., 's': ..., 'beta': ...}

    Each likelihood evaluation costs one 2F1 per distinct (x, t_x) and (x, T) pair plus a few
    vector operations per distinct row; the gradient is analytic except for the derivatives
    of 2F1 in its parameters b and c, taken by central differences of hyp2f1 on the pairs.
    """

    param_names = ("r", "alpha", "s", "beta")

    def fit(self, frequency, recency, T, weights=None, *, initial_params: dict | None = None):
        """Maximum-likelihood fit. ``weights`` are counts of customers per row (optional)."""
        x, tx, t, w = check_rft(frequency, recency, T, weights)
        data = _Data(x, tx, t, w)
        rate, mean_t = repeat_rate(x, t, w)
        theta0 = self._start(initial_params, lambda: [1.0, 1.0 / rate, 1.0, max(mean_t, 1e-6)])
        # Where the data carry no information on heterogeneity in dropout, the likelihood keeps
        # rising along a ridge with s, beta -> infinity (s / beta fixed: a common dropout rate);
        # as BTYD does, cap the parameters there - 2F1 near z = 1 gets very expensive beyond.
        scale = max(float(t.max()), 1e-6)
        upper = np.log([1e4 * max(1.0, scale), 1e4 * scale, 1e4, 1e4 * scale])
        theta0 = np.minimum(theta0, upper - 1.0)
        return self._maximise(data, theta0, upper=upper)

    def _objective(self, theta, data: _Data, with_grad: bool = False, penalised: bool = True):
        """Mean negative log-likelihood (and its gradient w.r.t. the log-parameters).

        Per row, ln L = xterm(x) + ln(e^LA + e^LB) with LA = -(r+x) ln(alpha+T) - s ln(beta+T)
        and LB = ln(s/(r+s+x)) + ln(G(t_x) - G(T)). The gradient is a weighted sum of per-pair
        derivatives; the row weights are aggregated to the pairs with bincount.
        """
        p = np.exp(theta)
        r, alpha, s, beta = p
        xterm = gammaln(r + data.xv) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        kappa = np.log(s) - np.log(r + s + data.xv)
        if with_grad:
            lg1, dlg1 = _log_G_grad(r, alpha, s, beta, data.p1x, data.p1t)
            lg2, dlg2 = _log_G_grad(r, alpha, s, beta, data.p2x, data.p2t)
        else:
            lg1 = _log_G(r, alpha, s, beta, data.p1x, data.p1t)
            lg2 = _log_G(r, alpha, s, beta, data.p2x, data.p2t)
        lg1k = lg1 + kappa[data.p1xcode]
        la2_alpha = np.log(alpha + data.p2t)
        la2_beta = np.log(beta + data.p2t)
        la2 = -(r + data.p2x) * la2_alpha - s * la2_beta
        d = lg2[data.p2inv]
        d -= lg1[data.p1inv]
        log_b = log1mexp(d)
        log_b += lg1k[data.p1inv]
        ll = _logaddexp(la2[data.p2inv], log_b)
        value = -(dot(data.wx, xterm) + dot(data.w, ll)) / data.total
        pen, pen_grad = self._penalty(p) if penalised else (0.0, np.zeros(4))
        if not with_grad:
            return value + pen
        # weights of the derivatives: e^(LB - ll) (for d kappa), e^(k + lnG(t_x) - ll) and
        # e^(k + lnG(T) - ll) (for d lnG at t_x and T), the rest of w for d LA
        c3 = np.exp(lg1k[data.p1inv] - ll)
        c3 *= data.w
        c4 = np.exp((lg2 + kappa[data.p2xcode])[data.p2inv] - ll)
        c4 *= data.w
        c2 = np.exp(log_b - ll)
        c2 *= data.w
        c1 = data.w - c2
        n1, n2 = data.p1x.shape[0], data.p2x.shape[0]
        C1 = np.bincount(data.p2inv, weights=c1, minlength=n2)
        C4 = np.bincount(data.p2inv, weights=c4, minlength=n2)
        C3 = np.bincount(data.p1inv, weights=c3, minlength=n1)
        C2 = np.bincount(data.xcode, weights=c2, minlength=data.xv.shape[0])
        g = matvec(dlg1, C3) - matvec(dlg2, C4)
        g[0] -= dot(C1, la2_alpha)
        g[1] -= dot(C1, (r + data.p2x) / (alpha + data.p2t))
        g[2] -= dot(C1, la2_beta)
        g[3] -= dot(C1, s / (beta + data.p2t))
        inv_rsx = 1.0 / (r + s + data.xv)
        g[0] -= dot(C2, inv_rsx)
        g[2] += dot(C2, 1.0 / s - inv_rsx)
        g[0] += dot(data.wx, digamma(r + data.xv) - digamma(r) + np.log(alpha))
        g[1] += data.total * r / alpha
        g[2] += data.total * np.log(beta)
        g[3] += data.total * s / beta
        return value + pen, -g * p / data.total + pen_grad

    # ------------------------------------------------------------------ predictions

    def _log_terms(self, x, tx, T):
        """ln of the two bracketed likelihood terms: 'alive at T' and the A0 term (eq. 18)."""
        r, alpha, s, beta = self._params()
        if x.shape[0] > 20000:  # distinct (x, t) pairs make 2F1 cheap for big inputs
            p1 = unique_rows([x, tx])
            p2 = unique_rows([x, T])
            lg_tx = _log_G(r, alpha, s, beta, *p1.columns)[p1.inverse]
            lg_T = _log_G(r, alpha, s, beta, *p2.columns)[p2.inverse]
        else:
            lg_tx = _log_G(r, alpha, s, beta, x, tx)
            lg_T = _log_G(r, alpha, s, beta, x, T)
        log_alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        log_a0 = np.log(s) - np.log(r + s + x) + lg_tx + log1mexp(lg_T - lg_tx)
        return log_alive, log_a0

    def log_likelihood(self, frequency, recency, T):
        """Per-customer ln L(r, alpha, s, beta | x, t_x, T) (note eq. 18)."""
        r, alpha, s, beta = self._params()
        x, tx, t, shape = broadcast_rft(frequency, recency, T)
        log_alive, log_a0 = self._log_terms(x, tx, t)
        ll = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + np.logaddexp(log_alive, log_a0)
        return reshape_out(ll, shape)

    def probability_alive(self, frequency, recency, T):
        """P(alive at T | x, t_x, T) = 1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A0)
        (note eq. 36-37), as a logistic function of a log-odds."""
        x, tx, t, shape = broadcast_rft(frequency, recency, T)
        return reshape_out(self._palive(x, tx, t), shape)

    def _palive(self, x, tx, T):
        log_alive, log_a0 = self._log_terms(x, tx, T)
        return expit(log_alive - log_a0)

    def expected_purchases(self, t, frequency, recency, T):
        """E[Y(t) | x, t_x, T], expected purchases in (T, T+t] (note eq. 41):

            P(alive) (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)],

        with the bracket divided by (s-1) computed by expm1/log1p (exact limit at s = 1).
        """
        x, tx, T_, shape = broadcast_rft(frequency, recency, T)
        palive = self._palive(x, tx, T_)
        tt = np.asarray(t, dtype=np.float64)
        if np.any(tt < 0):
            raise ValueError("t must be non-negative")
        if tt.ndim == 0:
            return reshape_out(palive * self._growth(float(tt), x, T_), shape)
        tt, pb, xb, Tb = np.broadcast_arrays(tt, palive.reshape(shape), x.reshape(shape), T_.reshape(shape))
        return (pb.reshape(-1) * self._growth(tt.reshape(-1), xb.reshape(-1), Tb.reshape(-1))).reshape(tt.shape)

    def _growth(self, t, x, T):
        r, alpha, s, beta = self._params()
        return (r + x) * (beta + T) / (alpha + T) * _pow_ratio(t / (beta + T), s)

    def _expected_purchases_grid(self, times, x, tx, T) -> np.ndarray:
        x, tx, T, _ = broadcast_rft(x, tx, T)
        palive = self._palive(x, tx, T)
        return np.stack([palive * self._growth(float(t), x, T) for t in times])

    def expected_purchases_new(self, t):
        """E[X(t)] = r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)] (note eq. 27)."""
        r, alpha, s, beta = self._params()
        tt = np.asarray(t, dtype=np.float64)
        out = r * beta / alpha * _pow_ratio(tt / beta, s)
        return float(out) if tt.ndim == 0 else out


def _pow_ratio(u, s):
    """[1 - (1+u)^-(s-1)] / (s-1), continuous at s = 1 (where it is ln(1+u))."""
    l1p = np.log1p(u)
    if abs(s - 1.0) < 1e-12:
        return l1p
    return -np.expm1(-(s - 1.0) * l1p) / (s - 1.0)

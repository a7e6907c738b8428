"""Shifted-beta-geometric (sBG) model of contractual retention.

Fader, P. S. and Hardie, B. G. S. (2007), "How to project customer retention", *Journal of
Interactive Marketing* 21(1), 76-90 (FH 2007); valuation from Fader, P. S. and Hardie, B. G. S.
(2010), "Customer-base valuation in a contractual setting: the perils of ignoring
heterogeneity", *Marketing Science* 29(1), 85-93 (FH 2010).

Story: at the end of every period (renewal opportunity) a customer cancels with probability
theta, constant for her; theta ~ Beta(alpha, beta) across customers. With T the period in
which a customer cancels (T = 1, 2, ...):

    P(T = t) = B(alpha+1, beta+t-1) / B(alpha, beta)         (FH 2007; its recursion is eq. 7)
    S(t)     = P(T > t) = B(alpha, beta+t) / B(alpha, beta)  (FH 2007)
    r_t      = S(t) / S(t-1) = (beta+t-1) / (alpha+beta+t-1) (FH 2007 eq. 8, retention rate)

Data are survivor counts: ``active[t]`` customers of a cohort still active after t periods
(``active[0]`` is the cohort size). The log-likelihood (FH 2007 eq. B3) is

    LL = sum_{t=1..t_f} n_t ln P(T=t) + active[t_f] ln S(t_f),   n_t = active[t-1] - active[t].

Valuation (FH 2010), with z = 1/(1+d) for a per-period discount rate d and a payment at each
renewal:

    DEL  = sum_{t>=0} S(t) z^t = 2F1(1, beta; alpha+beta; z)          (a new customer)
    DERL(n) = (beta+n)/(alpha+beta+n) 2F1(1, beta+n+1; alpha+beta+n+1; z)

for a customer who has made n renewals, valued just before the next renewal decision (the
k-th future payment is discounted k-1 times). ``residual_value`` is v * DERL(n) - the CLV of an
active subscriber; ``value_lost`` is v * 2F1(1, beta+n+1; alpha+beta+n+1; z), the expected
discounted value a subscriber *would* have brought had she renewed at that decision - the
value the firm lost when she did not (DERL(n) = r_{n+1} * value_lost(n)).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma

from ._base import FittedModel, as_float_array, check_weights, dot, minimize_log_params, unique_rows
from ._special import hyp2f1_1bcz

__all__ = ["ShiftedBetaGeometricModel"]


def _hyp_1bcz(b, c, d):
    """2F1(1, b; c; 1/(1+d)); at d = 0 the closed form (c-1)/(c-b-1), infinite if c-b-1 <= 0."""
    b, c, d = np.broadcast_arrays(np.asarray(b, float), np.asarray(c, float), np.asarray(d, float))
    out = np.empty(b.shape)
    zero = d == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out[zero] = np.where(c[zero] - b[zero] - 1 > 0, (c[zero] - 1) / (c[zero] - b[zero] - 1), np.inf)
    out[~zero] = hyp2f1_1bcz(b[~zero], c[~zero], 1.0 / (1.0 + d[~zero]))
    return out


def _scalar_or_array(values: np.ndarray, like) -> float | np.ndarray:
    return float(values) if np.ndim(like) == 0 and np.ndim(values) == 0 else values


class ShiftedBetaGeometricModel(FittedModel):
    """sBG retention model (FH 2007) with DERL-based valuation (FH 2010).

    >>> sbg = ShiftedBetaGeometricModel().fit(period=range(8), active=[1000, 631, 468, 382, 326, 289, 262, 241])
    >>> sbg.params_                   # {'alpha': 0.704, 'beta': 1.182}
    >>> sbg.survival(12), sbg.retention_rate(np.arange(1, 13))
    >>> sbg.residual_value(n_renewals=3, value_per_period=120, discount_rate=0.1)
    """

    param_names = ("alpha", "beta")

    # ------------------------------------------------------------------ fitting

    def fit(self, period, active, cohort=None):
        """Fit on survivor counts: ``active[i]`` customers still active at ``period[i]``.

        Each cohort (``cohort`` labels; one cohort when omitted) needs periods 0, 1, ..., t_f
        with non-increasing counts; ``active`` at period 0 is the cohort size.
        """
        per = as_float_array("period", period)
        act = as_float_array("active", active)
        if per.shape != act.shape:
            raise ValueError("period and active must have the same length")
        if cohort is None:
            labels = np.zeros(per.shape[0], dtype=np.int64)
        else:
            labels = np.unique(np.asarray(cohort), return_inverse=True)[1].reshape(-1)
        tenure, churned, weight = [], [], []
        for c in np.unique(labels):
            sel = labels == c
            order = np.argsort(per[sel], kind="stable")
            p, a = per[sel][order], act[sel][order]
            if not np.array_equal(p, np.arange(p.shape[0])):
                raise ValueError("each cohort needs the periods 0, 1, 2, ... without gaps")
            if np.any(a < 0) or np.any(np.diff(a) > 0):
                raise ValueError("active counts must be non-negative and non-increasing")
            if a[0] <= 0:
                raise ValueError("the cohort size (active at period 0) must be positive")
            lost = a[:-1] - a[1:]
            tenure += [p[1:], p[-1:]]
            churned += [np.ones(lost.shape[0], dtype=bool), np.zeros(1, dtype=bool)]
            weight += [lost, a[-1:]]
        return self._fit(np.concatenate(tenure), np.concatenate(churned), np.concatenate(weight))

    def fit_tenures(self, tenure, churned, weights=None):
        """Fit on one row per customer: ``churned`` customers left in period ``tenure`` (t >= 1:
        active at t-1, gone at t); the others are still active after ``tenure`` periods (t >= 0)."""
        t = as_float_array("tenure", tenure)
        c = np.asarray(churned, dtype=bool).reshape(-1)
        if c.shape[0] != t.shape[0]:
            raise ValueError("tenure and churned must have the same length")
        w = check_weights(weights, t.shape[0])
        if np.any(t < 0) or np.any(t != np.floor(t)) or np.any(t[c] < 1):
            raise ValueError("tenure must be whole periods (>= 1 for churned customers)")
        return self._fit(t, c, w)

    def _fit(self, tenure, churned, weight):
        keep = weight > 0
        u = unique_rows([tenure[keep], churned[keep].astype(np.float64)], weight[keep])
        t, c = u.columns
        data = (t, c.astype(bool), u.weights, float(u.weights.sum()))
        if not np.any(data[1]):
            raise ValueError("no customer has churned: the model cannot be estimated")
        optimum = minimize_log_params(
            lambda th: self._objective(th, data, False),
            np.log([1.0, 1.0]),
            lambda th: self._objective(th, data, True),
        )
        loglik = -self._objective(optimum.theta, data, False, penalised=False) * data[3]
        self._store(optimum, data[3], t.shape[0], loglik)
        return self

    def _objective(self, theta, data, with_grad: bool, penalised: bool = True):
        p = np.exp(theta)
        a, b = p
        t, churned, w, total = data
        base = betaln(a, b)
        tc, wc = t[churned], w[churned]
        ts, ws = t[~churned], w[~churned]
        ll = dot(wc, betaln(a + 1, b + tc - 1) - base) + dot(ws, betaln(a, b + ts) - base)
        value = -ll / total
        if not penalised:
            return value
        pen, pen_grad = self._penalty(p)
        if not with_grad:
            return value + pen
        d_base_a = digamma(a) - digamma(a + b)
        d_base_b = digamma(b) - digamma(a + b)
        psi_c = digamma(a + b + tc)
        psi_s = digamma(a + b + ts)
        g_a = dot(wc, digamma(a + 1) - psi_c - d_base_a) + dot(ws, digamma(a + b) - psi_s)
        g_b = dot(wc, digamma(b + tc - 1) - psi_c - d_base_b) + dot(ws, digamma(b + ts) - psi_s - d_base_b)
        return value + pen, -np.array([g_a, g_b]) * p / total + pen_grad

    # ------------------------------------------------------------------ retention

    def churn_probability(self, t):
        """P(T = t): probability of cancelling at the end of period t >= 1 (FH 2007)."""
        a, b = self._params()
        tt = np.asarray(t, dtype=np.float64)
        return _scalar_or_array(np.exp(betaln(a + 1, b + tt - 1) - betaln(a, b)), t)

    def survival(self, t):
        """S(t) = P(T > t): share of a cohort still active after t periods (FH 2007)."""
        a, b = self._params()
        tt = np.asarray(t, dtype=np.float64)
        return _scalar_or_array(np.exp(betaln(a, b + tt) - betaln(a, b)), t)

    def retention_rate(self, t):
        """r_t = (beta+t-1)/(alpha+beta+t-1): share of period t-1's survivors renewing at t (eq. 8)."""
        a, b = self._params()
        tt = np.asarray(t, dtype=np.float64)
        return _scalar_or_array((b + tt - 1) / (a + b + tt - 1), t)

    def expected_active(self, cohort_size, t):
        """Projected survivors of a cohort: cohort_size * S(t)."""
        return np.asarray(cohort_size, dtype=np.float64) * self.survival(t)

    def expected_lifetime(self) -> float:
        """E[T] = sum_t S(t) = (alpha+beta-1)/(alpha-1) periods (infinite when alpha <= 1)."""
        a, b = self._params()
        return (a + b - 1) / (a - 1) if a > 1 else float("inf")

    # ------------------------------------------------------------------ valuation (FH 2010)

    def discounted_expected_lifetime(self, discount_rate):
        """DEL(d) = 2F1(1, beta; alpha+beta; 1/(1+d)): discounted expected number of payments of
        a newly acquired customer (first payment at acquisition, undiscounted)."""
        a, b = self._params()
        d = np.asarray(discount_rate, dtype=np.float64)
        return _scalar_or_array(_hyp_1bcz(b, a + b, d), discount_rate)

    def discounted_expected_residual_lifetime(self, n_renewals, discount_rate):
        """DERL(d | n) = (beta+n)/(alpha+beta+n) 2F1(1, beta+n+1; alpha+beta+n+1; 1/(1+d)) (FH 2010):
        discounted expected number of future payments of a customer with n renewals so far,
        valued just before her next renewal decision."""
        a, b = self._params()
        n = np.asarray(n_renewals, dtype=np.float64)
        d = np.asarray(discount_rate, dtype=np.float64)
        out = (b + n) / (a + b + n) * _hyp_1bcz(b + n + 1, a + b + n + 1, d)
        return _scalar_or_array(out, np.broadcast(n, d))

    derl = discounted_expected_residual_lifetime

    def residual_value(self, n_renewals, value_per_period, discount_rate):
        """Residual CLV of active subscribers: value_per_period * DERL(d | n)."""
        derl = self.discounted_expected_residual_lifetime(n_renewals, discount_rate)
        return np.asarray(value_per_period, dtype=np.float64) * derl

    def value_lost(self, n_renewals, value_per_period, discount_rate):
        """Value lost by a subscriber who cancelled at the renewal decision after n renewals:
        value_per_period * 2F1(1, beta+n+1; alpha+beta+n+1; 1/(1+d)), the expected discounted
        payments had she renewed (payment at that renewal plus her expected future ones)."""
        a, b = self._params()
        n = np.asarray(n_renewals, dtype=np.float64)
        d = np.asarray(discount_rate, dtype=np.float64)
        return np.asarray(value_per_period, dtype=np.float64) * _hyp_1bcz(b + n + 1, a + b + n + 1, d)

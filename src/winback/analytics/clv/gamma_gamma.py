"""Gamma-Gamma model of average spend per transaction.

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: using iso-value curves for
customer base analysis", *Journal of Marketing Research* 42(4), 415-430 (FHL 2005b), after
Colombo, R. and Jiang, W. (1999), "A stochastic RFM model", *Journal of Interactive Marketing*
13(3), 2-12. Equation numbers refer to Fader & Hardie's note "The Gamma-Gamma model of
monetary value" (2013, brucehardie.com note 025).

Story: a customer's transaction values are Gamma(p, nu); nu varies across customers as
Gamma(q, gamma). Given x transactions with mean value m, the likelihood is (note eq. 1a)

    f(m | p, q, gamma, x) = Gamma(px+q) / (Gamma(px) Gamma(q))
                            * gamma^q m^(px-1) x^(px) / (gamma + m x)^(px+q),

and the expected average value of a customer's transactions (note eq. 5)

    E[M | p, q, gamma, m, x] = (q-1)/(px+q-1) * gamma p/(q-1) + px/(px+q-1) * m.

Only customers with at least one repeat purchase (x > 0, m > 0) carry information: ``x`` and
``m`` are the *repeat* purchases and their mean value, as in ``summary_from_transactions``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from ._base import (
    FittedModel,
    as_float_array,
    check_weights,
    dot,
    integer_codes,
    reshape_out,
    unique_rows,
)
from .value import customer_lifetime_value as _shared_clv

__all__ = ["GammaGammaModel"]


class _Data:
    """Deduplicated (x, m) rows; the Gamma-function terms depend on x only and are summed per
    distinct x, the p-terms of (px-1) ln m + px ln x are constants, so a likelihood evaluation
    needs one logarithm per distinct row (ln(gamma + m x))."""

    def __init__(self, x, m, w):
        u = unique_rows([x, m], w)
        ux, um = u.columns
        self.w = u.weights
        self.n_unique = ux.shape[0]
        self.total = float(self.w.sum())
        self.mx = um * ux
        self.wxs = self.w * ux
        self.xv, xcode = integer_codes(ux)
        self.wx = np.bincount(xcode, weights=self.w, minlength=self.xv.shape[0])
        log_m = np.log(um)
        self.s1 = dot(self.wxs, log_m + np.log(ux))  # sum w x (ln m + ln x)
        self.s0 = -dot(self.w, log_m)  # sum w (-ln m)


class GammaGammaModel(FittedModel):
    """Gamma-Gamma spend model (Colombo & Jiang 1999; FHL 2005b).

    >>> gg = GammaGammaModel().fit(frequency, monetary_value)
    >>> gg.params_                      # {'p': ..., 'q': ..., 'gamma': ...}
    >>> gg.expected_average_value(frequency, monetary_value)
    >>> gg.customer_lifetime_value(bgnbd, frequency, recency, T, monetary_value)

    The parameter lifetimes calls ``v`` is ``gamma`` here (as in the papers).
    """

    param_names = ("p", "q", "gamma")

    def fit(self, frequency, monetary_value, weights=None, *, initial_params: dict | None = None):
        """Fit on customers with repeat purchases; rows with ``frequency == 0`` are ignored
        (their monetary value is undefined: it is the mean of the repeat purchases)."""
        x = as_float_array("frequency", frequency)
        m = as_float_array("monetary_value", monetary_value)
        if m.shape[0] != x.shape[0]:
            raise ValueError("frequency and monetary_value must have the same length")
        w = check_weights(weights, x.shape[0])
        if np.any(x < 0) or np.any(x != np.floor(x)):
            raise ValueError("frequency must contain non-negative whole numbers (repeat purchases)")
        keep = (x > 0) & (w > 0)
        x, m, w = x[keep], m[keep], w[keep]
        if x.shape[0] == 0:
            raise ValueError("no customers with repeat purchases to fit")
        if np.any(m <= 0):
            raise ValueError("monetary_value must be positive for customers with repeat purchases")
        data = _Data(x, m, w)
        # method of moments on the per-customer means: E[m] = p gamma / (q - 1)
        mean_m = float(np.average(m, weights=w))
        return self._maximise(data, self._start(initial_params, lambda: [2.0, 3.0, mean_m]))

    def _objective(self, theta, data: _Data, with_grad: bool, penalised: bool = True):
        pr = np.exp(theta)
        p, q, g = pr
        px = p * data.xv
        L = np.log(g + data.mx)
        sum_wxL = dot(data.wxs, L)
        sum_wL = dot(data.w, L)
        total = (
            dot(data.wx, gammaln(px + q) - gammaln(px)) + data.total * (q * np.log(g) - gammaln(q))
            + p * data.s1 + data.s0 - p * sum_wxL - q * sum_wL
        )
        value = -total / data.total
        if not penalised:
            return value
        pen, pen_grad = self._penalty(pr)
        if not with_grad:
            return value + pen
        psi = digamma(px + q)
        d_p = dot(data.wx, data.xv * (psi - digamma(px))) + data.s1 - sum_wxL
        d_q = dot(data.wx, psi) + data.total * (np.log(g) - digamma(q)) - sum_wL
        d_g = data.total * q / g - dot(p * data.wxs + q * data.w, 1.0 / (g + data.mx))
        grad = -np.array([d_p, d_q, d_g]) * pr / data.total
        return value + pen, grad + pen_grad

    def log_likelihood(self, frequency, monetary_value):
        """Per-customer ln f(m | p, q, gamma, x) (note eq. 1a); NaN where frequency is 0."""
        p, q, g = self._params()
        x, m = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(monetary_value, dtype=float))
        shape = x.shape
        x, m = x.reshape(-1), m.reshape(-1)
        px = p * x
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = (
                gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
                + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(g + m * x)
            )
        return reshape_out(np.where(x > 0, ll, np.nan), shape)

    def expected_average_value(self, frequency, monetary_value):
        """E[M | x, m] = (gamma p + p x m) / (p x + q - 1) (note eq. 5): a credibility-weighted
        mix of the population mean gamma p / (q - 1) and the customer's own mean m.

        For x = 0 it is the population mean. Requires q > 1 (the population mean exists).
        """
        p, q, g = self._params()
        if q <= 1:
            raise ValueError(f"q = {q:.4g} <= 1: the population mean spend is infinite")
        x, m = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(monetary_value, dtype=float))
        m = np.where(x > 0, m, 0.0)
        out = (g * p + p * x * m) / (p * x + q - 1.0)
        return float(out) if out.ndim == 0 else out

    def population_mean_value(self) -> float:
        """E[Z] = p gamma / (q - 1), the mean transaction value across customers."""
        p, q, g = self._params()
        return p * g / (q - 1.0) if q > 1 else float("inf")

    def customer_lifetime_value(
        self,
        transaction_model,
        frequency,
        recency,
        T,
        monetary_value,
        horizon_months: int = 12,
        discount_rate_monthly: float = 0.01,
        time_unit_days: float = 7,
        periods_per_month: float | None = None,
    ):
        """Discounted CLV with this model's expected average value as the value per purchase
        (what lifetimes' ``GammaGammaFitter.customer_lifetime_value`` computes); see
        ``winback.analytics.clv.customer_lifetime_value``."""
        value = self.expected_average_value(frequency, monetary_value)
        return _shared_clv(
            transaction_model, frequency, recency, T, value,
            horizon_months=horizon_months, discount_rate_monthly=discount_rate_monthly,
            time_unit_days=time_unit_days, periods_per_month=periods_per_month,
        )

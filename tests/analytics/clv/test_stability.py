"""Numerical stability and input handling: extreme frequency / T, zeros, weights, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import betaln, gammaln, hyp2f1

from winback.analytics.clv import (
    BetaGeoModel,
    GammaGammaModel,
    NotFittedError,
    ParetoNBDModel,
    ShiftedBetaGeometricModel,
)
from winback.analytics.clv._special import hyp2f1_1bcz, hyp2f1_1bcz_cf
from winback.analytics.clv.simulate import simulate_bgnbd, simulate_gamma_gamma, simulate_pareto_nbd

BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PNBD = {  # both branches of the 2F1 transformation, and CLVTools' former-NaN case
    "alpha<beta": {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67},
    "alpha>beta": {"r": 0.55, "alpha": 11.67, "s": 0.61, "beta": 10.58},
    "clvtools": {"r": 0.5143, "alpha": 2.8845, "s": 0.2856, "beta": 14.1087},
}
# heavy buyers, very long histories, purchases long ago, just now, and nothing at all
X = np.array([0, 0, 1, 1, 221, 254, 161, 204, 1e4, 1e5, 1e6, 5e3, 1e5, 40, 3])
TX = np.array([0, 0, 1e-9, 30, 103.42857, 97.14286, 94.71429, 98.57143, 1e4, 5e5, 1e7, 10, 1e5, 1e-3, 5])
T = np.array([0, 1e6, 1e6, 30, 103.57143, 97.28571, 98.0, 99.42857, 1e4 + 1, 1e6, 1e7, 1e6, 1e5, 1e8, 5])


def _models():
    yield "bgnbd", BetaGeoModel().set_params(**BG)
    for name, params in PNBD.items():
        yield f"pnbd {name}", ParetoNBDModel().set_params(**params)


@pytest.mark.parametrize(("name", "model"), list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_extreme_inputs_give_finite_results_without_warnings(name, model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ll = model.log_likelihood(X, TX, T)
        pa = model.probability_alive(X, TX, T)
        ep = model.expected_purchases(52.0, X, TX, T)
        new = model.expected_purchases_new(np.array([0.0, 1.0, 1e6, 1e9]))
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(ep)) and np.all(np.isfinite(new))
    assert np.all((pa >= 0) & (pa <= 1))
    assert np.all(ep >= 0) and new[0] == 0 and np.all(np.diff(new) > 0)
    assert pa[0] == pytest.approx(1.0) or name.startswith("pnbd")
    # a customer who bought 1e5 times up to the end of a long history is alive and keeps buying
    assert pa[12] > 0.99 and ep[12] > 0.9 * 52 * (1e5 / 1e5) * pa[12]
    # one who stopped long ago (1e5 purchases, last at 5e5 of 1e6) is gone
    assert pa[9] < 1e-12 and ep[9] < 1e-9


def test_bgnbd_log_likelihood_equals_the_paper_formula():
    """FHL 2005 eq. (6) written with Beta functions, on moderate inputs."""
    r, alpha, a, b = BG.values()
    x = np.array([0, 1, 2, 5, 20, 60.0])
    tx = np.array([0, 3.5, 10, 30, 35, 38.0])
    t = np.full(6, 38.86)
    first = betaln(a, b + x) - betaln(a, b) + gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + t)
    second = betaln(a + 1, b + x - 1) - betaln(a, b) + gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + tx)
    want = np.log(np.exp(first) + np.where(x > 0, np.exp(second), 0.0))
    got = BetaGeoModel().set_params(**BG).log_likelihood(x, tx, t)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_bgnbd_expectation_equals_the_untransformed_formula_where_that_is_finite():
    r, alpha, a, b = BG.values()
    x = np.array([0, 1, 3, 10, 30.0])
    tx = np.array([0, 20, 30, 35, 38.0])
    t = np.full(5, 38.86)
    for horizon in (1.0, 10.0, 52.0):
        z = horizon / (alpha + t + horizon)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        num = (a + b + x - 1) / (a - 1) * (1 - hyp * ((alpha + t) / (alpha + horizon + t)) ** (r + x))
        den = 1 + (x > 0) * a / (b + x - 1) * ((alpha + t) / (alpha + tx)) ** (r + x)
        got = BetaGeoModel().set_params(**BG).expected_purchases(horizon, x, tx, t)
        np.testing.assert_allclose(got, num / den, rtol=1e-10)


@pytest.mark.parametrize("params", list(PNBD.values()), ids=list(PNBD))
def test_pareto_nbd_log_likelihood_equals_numerical_integration(params):
    """ln L = ln C + ln[(alpha+T)^-(r+x) (beta+T)^-s + int_{t_x}^T s (alpha+u)^-(r+x) (beta+u)^-(s+1) du]
    (SMC 1987), integrated by quadrature, scaled to avoid underflow - independent of 2F1."""
    r, alpha, s, beta = params.values()
    model = ParetoNBDModel().set_params(**params)
    for x, tx, t in [(0, 0, 38.0), (2, 30.4, 38.9), (7, 2.0, 38.9), (221, 103.43, 103.57), (161, 94.7, 98.0), (1e4, 50.0, 1e3), (3, 0.5, 1e5)]:
        log_peak = -(r + x) * np.log(alpha + tx) - (s + 1) * np.log(beta + tx)

        def scaled(u, x=x, tx=tx):
            return np.exp(-(r + x) * np.log1p((u - tx) / (alpha + tx)) - (s + 1) * np.log1p((u - tx) / (beta + tx)))

        width = (alpha + tx) / (r + x + s + 1)  # the integrand decays on this scale
        pts = [p for p in (tx + width, tx + 10 * width, tx + 100 * width) if p < t]
        integral = quad(scaled, tx, t, points=pts or None, limit=500, epsabs=0, epsrel=1e-12)[0] if t > tx else 0.0
        log_alive = -(r + x) * np.log(alpha + t) - s * np.log(beta + t)
        log_int = np.log(s) + log_peak + np.log(integral) if integral > 0 else -np.inf
        want = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + np.logaddexp(log_alive, log_int)
        assert model.log_likelihood(x, tx, t) == pytest.approx(want, rel=1e-8, abs=1e-8), (x, tx, t)


def test_time_rescaling_only_rescales_the_rate_parameters(cdnow_csv):
    """Measuring time in units 10,000x smaller (T up to ~4e5) changes nothing but alpha (beta)."""
    k = 1e4
    x, tx, t = cdnow_csv.x, cdnow_csv.t_x, cdnow_csv.T
    bg, bg_k = BetaGeoModel().fit(x, tx, t), BetaGeoModel().fit(x, tx * k, t * k)
    for name in ("r", "a", "b"):
        assert bg_k.params_[name] == pytest.approx(bg.params_[name], rel=1e-5)
    assert bg_k.params_["alpha"] == pytest.approx(k * bg.params_["alpha"], rel=1e-5)
    # the likelihood is a density in time: it shifts by -sum(x) ln k
    assert bg_k.log_likelihood_ == pytest.approx(bg.log_likelihood_ - x.sum() * np.log(k), rel=1e-9)
    pn, pn_k = ParetoNBDModel().fit(x, tx, t), ParetoNBDModel().fit(x, tx * k, t * k)
    for name in ("r", "s"):
        assert pn_k.params_[name] == pytest.approx(pn.params_[name], rel=1e-4)
    for name in ("alpha", "beta"):
        assert pn_k.params_[name] == pytest.approx(k * pn.params_[name], rel=1e-4)


def test_fitting_with_heavy_buyers_stays_finite(cdnow_csv):
    """CDNOW plus a few customers with thousands (BG/NBD: up to a million) of purchases."""
    tx = np.append(cdnow_csv.t_x, [38.0, 20.0, 38.85])
    t = np.append(cdnow_csv.T, [38.86, 38.86, 38.86])
    for model, heavy in ((BetaGeoModel(), [5e4, 2e5, 1e6]), (ParetoNBDModel(), [2e3, 5e3, 1e4])):
        x = np.append(cdnow_csv.x, heavy)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.fit(x, tx, t)
        assert np.isfinite(model.log_likelihood_) and model.converged_
        assert all(np.isfinite(v) and v > 0 for v in model.params_.values())
        assert all(np.isfinite(v) for v in model.standard_errors_.values())
        assert np.all(np.isfinite(model.probability_alive(x, tx, t)))


def test_customers_observed_for_zero_time_and_zero_purchases(cdnow_csv):
    x = np.append(cdnow_csv.x, np.zeros(50))
    tx = np.append(cdnow_csv.t_x, np.zeros(50))
    t = np.append(cdnow_csv.T, np.zeros(50))
    for model in (BetaGeoModel(), ParetoNBDModel()):
        model.fit(x, tx, t)
        assert model.converged_
        assert model.log_likelihood(0, 0, 0) == pytest.approx(0.0, abs=1e-12)  # nothing observed
        assert model.expected_purchases(0, 3, 2, 5) == 0.0


def _duplicated(rng, n=3000, simulate=simulate_bgnbd):
    params = (0.5, 6.0, 0.9, 2.0) if simulate is simulate_bgnbd else (0.5, 6.0, 0.8, 10.0)
    x, tx, t = simulate(n, *params, rng.integers(20, 40, n).astype(float), rng)
    tx = np.round(tx)  # whole weeks: many duplicates
    m = np.round(simulate_gamma_gamma(x, 6.0, 4.0, 15.0, rng), 0)
    return x, tx, t, m


@pytest.mark.parametrize(("model_cls", "simulate"), [(BetaGeoModel, simulate_bgnbd), (ParetoNBDModel, simulate_pareto_nbd)])
def test_weights_equal_duplicated_rows(model_cls, simulate):
    rng = np.random.default_rng(7)
    x, tx, t, _ = _duplicated(rng, simulate=simulate)
    full = model_cls().fit(x, tx, t)
    rows, inverse, counts = np.unique(np.c_[x, tx, t], axis=0, return_inverse=True, return_counts=True)
    weighted = model_cls().fit(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)
    # the same rows split into two halves of weight, plus a row of weight zero
    halves = model_cls().fit(
        np.r_[rows[:, 0], rows[:, 0], 1.0], np.r_[rows[:, 1], rows[:, 1], 999.0], np.r_[rows[:, 2], rows[:, 2], 1000.0],
        weights=np.r_[counts / 2, counts / 2, 0.0],
    )
    assert full.n_unique_ == rows.shape[0] < 3000
    for other in (weighted, halves):
        assert other.n_customers_ == pytest.approx(3000)
        assert other.log_likelihood_ == pytest.approx(full.log_likelihood_, rel=1e-10)
        for name, value in full.params_.items():
            assert other.params_[name] == pytest.approx(value, rel=1e-6), name
            assert other.standard_errors_[name] == pytest.approx(full.standard_errors_[name], rel=1e-3), name
    assert full.log_likelihood(x, tx, t).sum() == pytest.approx(full.log_likelihood_, rel=1e-10)


def test_gamma_gamma_weights_equal_duplicated_rows():
    rng = np.random.default_rng(8)
    x, _, _, m = _duplicated(rng)
    full = GammaGammaModel().fit(x, m)
    rows, counts = np.unique(np.c_[x, m][x > 0], axis=0, return_counts=True)
    weighted = GammaGammaModel().fit(rows[:, 0], rows[:, 1], weights=counts)
    assert weighted.n_customers_ == full.n_customers_ == (x > 0).sum()
    for name, value in full.params_.items():
        assert weighted.params_[name] == pytest.approx(value, rel=1e-6)
    assert np.nansum(full.log_likelihood(x, m)) == pytest.approx(full.log_likelihood_, rel=1e-10)


def test_removable_singularities():
    """BG/NBD expectations at a = 1 and Pareto/NBD ones at s = 1 are the limits from both sides."""
    x, tx, t = np.array([0.0, 2, 9]), np.array([0.0, 10, 30]), np.array([39.0, 39, 39])
    for eps in (0.0, 1e-9):
        at = BetaGeoModel().set_params(r=0.3, alpha=4.0, a=1.0 + eps, b=2.0).expected_purchases(20.0, x, tx, t)
        lo = BetaGeoModel().set_params(r=0.3, alpha=4.0, a=1.0 - 1e-4, b=2.0).expected_purchases(20.0, x, tx, t)
        hi = BetaGeoModel().set_params(r=0.3, alpha=4.0, a=1.0 + 1e-4, b=2.0).expected_purchases(20.0, x, tx, t)
        np.testing.assert_allclose(at, (lo + hi) / 2, rtol=1e-7)
        at = ParetoNBDModel().set_params(r=0.5, alpha=10.0, s=1.0 + eps, beta=12.0).expected_purchases(20.0, x, tx, t)
        lo = ParetoNBDModel().set_params(r=0.5, alpha=10.0, s=1.0 - 1e-5, beta=12.0).expected_purchases(20.0, x, tx, t)
        hi = ParetoNBDModel().set_params(r=0.5, alpha=10.0, s=1.0 + 1e-5, beta=12.0).expected_purchases(20.0, x, tx, t)
        np.testing.assert_allclose(at, (lo + hi) / 2, rtol=1e-7)


def test_scalars_broadcasting_and_array_horizons():
    bg = BetaGeoModel().set_params(**BG)
    assert isinstance(bg.probability_alive(0, 0, 10), float) and bg.probability_alive(0, 0, 10) == 1.0
    assert isinstance(bg.expected_purchases(10, 2, 5, 20), float)
    grid = bg.expected_purchases(np.array([[1.0], [10.0]]), np.array([0, 2, 5]), np.array([0, 5, 18]), 20)
    assert grid.shape == (2, 3)
    assert grid[1, 1] == pytest.approx(bg.expected_purchases(10, 2, 5, 20))
    pn = ParetoNBDModel().set_params(**PNBD["alpha<beta"])
    assert pn.expected_purchases(np.array([1.0, 10.0]), 2, 5, 20).shape == (2,)
    assert isinstance(bg.expected_purchases_new(3), float) and bg.expected_purchases_new(np.array([1.0, 2])).shape == (2,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1, 2], [3, 5], [4, 4]), "recency must not exceed T"),
        (([1, -1], [1, 0], [4, 4]), "non-negative whole numbers"),
        (([1.5, 1], [1, 1], [4, 4]), "non-negative whole numbers"),
        (([0, 1], [1, 1], [4, 4]), "recency must be 0"),
        (([1, 1], [-1, 1], [4, 4]), "recency must be non-negative"),
        (([1, np.nan], [1, 1], [4, 4]), "NaN"),
        (([1, 1], [1, 1], [4]), "same length"),
        (([], [], []), "no customers"),
    ],
)
def test_invalid_inputs_are_rejected(args, message):
    for model in (BetaGeoModel(), ParetoNBDModel()):
        with pytest.raises(ValueError, match=message):
            model.fit(*args)


def test_other_errors():
    with pytest.raises(NotFittedError):
        BetaGeoModel().probability_alive(1, 1, 2)
    with pytest.raises(ValueError, match="negative weights|non-negative"):
        BetaGeoModel().fit([1, 1], [1, 1], [2, 2], weights=[1, -1])
    with pytest.raises(ValueError, match="monetary_value must be positive"):
        GammaGammaModel().fit([1, 2], [10.0, 0.0])
    with pytest.raises(ValueError, match="no customers with repeat purchases"):
        GammaGammaModel().fit([0, 0], [0.0, 0.0])
    with pytest.raises(ValueError, match="penalizer"):
        BetaGeoModel(penalizer=-1)
    with pytest.raises(ValueError, match="q = "):
        GammaGammaModel().set_params(p=1.0, q=0.5, gamma=1.0).expected_average_value(1, 10.0)
    with pytest.raises(ValueError, match="no customer has churned"):
        ShiftedBetaGeometricModel().fit([0, 1, 2], [100, 100, 100])


def test_penalizer_shrinks_parameters(cdnow_csv):
    plain = BetaGeoModel().fit(cdnow_csv.x, cdnow_csv.t_x, cdnow_csv.T)
    shrunk = BetaGeoModel(penalizer=0.01).fit(cdnow_csv.x, cdnow_csv.t_x, cdnow_csv.T)
    assert sum(v**2 for v in shrunk.params_.values()) < sum(v**2 for v in plain.params_.values())
    assert shrunk.log_likelihood_ < plain.log_likelihood_  # the unpenalised LL at the penalised optimum


def _series(b: float, c: float, z: float) -> float:
    """2F1(1, b; c; z) summed term by term in long double (reference for the tests below)."""
    k = np.arange(3_000_000, dtype=np.longdouble)
    terms = np.cumprod(np.r_[np.longdouble(1), (b + k[:-1]) / (c + k[:-1]) * np.longdouble(z)])
    return float(terms.sum())


@pytest.mark.parametrize(
    ("b", "c", "z"),
    [(277.48945584, 279.85797669, 0.99801698), (171.71972281, 172.13289561, 0.99886852), (500.0, 503.0, 0.9999),
     (1.6, 2.2, 0.999), (147.0, 149.3, 0.996), (3.0, 4.0, 0.5), (0.61, 2.16, 0.09)],
)
def test_hypergeometric_2f1_where_scipy_fails(b, c, z):
    """scipy.special.hyp2f1 returns NaN or inf for the first three; the fallback does not."""
    want = _series(b, c, z)
    assert hyp2f1_1bcz(b, c, z) == pytest.approx(want, rel=1e-11)
    assert hyp2f1_1bcz_cf(b, c, z) == pytest.approx(want, rel=1e-11)

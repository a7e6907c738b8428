"""Parameter recovery: data simulated from known parameters are fitted back, and the standard
errors (inverse Hessian) cover the truth at about the nominal rate."""

from __future__ import annotations

import numpy as np
import pytest

from winback.analytics.clv import BetaGeoModel, GammaGammaModel, ParetoNBDModel, ShiftedBetaGeometricModel
from winback.analytics.clv.simulate import simulate_bgnbd, simulate_gamma_gamma, simulate_pareto_nbd, simulate_sbg

SEEDS = range(6)
TRUE_BG = {"r": 0.6, "alpha": 8.0, "a": 0.8, "b": 2.5}
TRUE_PNBD = {"r": 0.6, "alpha": 8.0, "s": 0.7, "beta": 12.0}
TRUE_GG = {"p": 6.0, "q": 4.0, "gamma": 15.0}
TRUE_SBG = {"alpha": 0.9, "beta": 2.2}


def _z_scores(fits, truth) -> np.ndarray:
    return np.array([[(m.params_[k] - v) / m.standard_errors_[k] for k, v in truth.items()] for m in fits])


def _check_coverage(z: np.ndarray) -> None:
    assert np.all(np.isfinite(z))
    assert np.max(np.abs(z)) < 4.0, z
    covered = np.mean(np.abs(z) < 1.96)
    assert covered >= 0.75, z  # nominal 95%


def _cohort_T(rng, n):
    return rng.integers(26, 53, n).astype(float)  # weekly cohorts observed 26-52 weeks


def test_bgnbd_recovers_parameters():
    fits = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x, tx, T = simulate_bgnbd(20000, *TRUE_BG.values(), _cohort_T(rng, 20000), rng)
        fits.append(BetaGeoModel().fit(x, tx, T))
    _check_coverage(_z_scores(fits, TRUE_BG))


def test_bgnbd_large_sample_is_close_and_se_shrinks():
    rng = np.random.default_rng(42)
    x, tx, T = simulate_bgnbd(200000, *TRUE_BG.values(), _cohort_T(rng, 200000), rng)
    m = BetaGeoModel().fit(x, tx, T)
    for k, v in TRUE_BG.items():
        assert m.params_[k] == pytest.approx(v, rel=0.05), k
        assert m.standard_errors_[k] < 0.03 * v
    assert m.converged_ and m.n_customers_ == 200000


def test_pareto_nbd_recovers_parameters():
    fits = []
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        x, tx, T = simulate_pareto_nbd(10000, *TRUE_PNBD.values(), _cohort_T(rng, 10000), rng)
        fits.append(ParetoNBDModel().fit(x, tx, T))
    _check_coverage(_z_scores(fits, TRUE_PNBD))


def test_gamma_gamma_recovers_parameters():
    fits = []
    for seed in SEEDS:
        rng = np.random.default_rng(200 + seed)
        x = rng.poisson(3.0, 8000).astype(float)
        m = simulate_gamma_gamma(x, *TRUE_GG.values(), rng)
        fits.append(GammaGammaModel().fit(x, m))
    _check_coverage(_z_scores(fits, TRUE_GG))
    assert all(f.n_customers_ < 8000 for f in fits)  # customers without repeat purchases are left out


def test_sbg_recovers_parameters():
    fits = []
    for seed in SEEDS:
        active = simulate_sbg(3000, *TRUE_SBG.values(), periods=10, seed=300 + seed)
        assert active[0] == 3000 and np.all(np.diff(active) <= 0)
        fits.append(ShiftedBetaGeometricModel().fit(np.arange(11), active))
    _check_coverage(_z_scores(fits, TRUE_SBG))


def test_sbg_several_cohorts_of_different_ages():
    periods, actives, cohorts = [], [], []
    for c, age in enumerate([12, 9, 6, 3, 1]):
        active = simulate_sbg(20000, *TRUE_SBG.values(), periods=age, seed=400 + c)
        periods.append(np.arange(age + 1))
        actives.append(active)
        cohorts.append(np.full(age + 1, f"2024-{c + 1:02d}"))
    m = ShiftedBetaGeometricModel().fit(np.concatenate(periods), np.concatenate(actives), cohort=np.concatenate(cohorts))
    assert m.n_customers_ == 100000
    z = _z_scores([m], TRUE_SBG)
    assert np.max(np.abs(z)) < 4

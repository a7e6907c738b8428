"""Published results reproduced: CDNOW (BG/NBD, Pareto/NBD, Gamma-Gamma) and the sBG examples.

Sources of the reference numbers:
- BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing
  Science 24(2): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4.
- Pareto/NBD: Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related
  expressions": r = 0.55, alpha = 10.58, s = 0.61, beta = 11.67, LL = -9594.98 (also in the
  CLVTools test-suite: r 0.55315, alpha 10.57633, s 0.60625, beta 11.67150, LL -9594.976,
  standard errors 0.0476264, 0.8427222, 0.1872594, 6.2105448).
- Gamma-Gamma: Fader, Hardie & Lee (2005), "RFM and CLV", JMR 42(4), and Fader & Hardie's note
  "The Gamma-Gamma model of monetary value": p = 6.25, q = 3.74, gamma = 15.44 on the 946
  repeat buyers, LL = -4055.92 (CLVTools: -4055.9177).
- sBG: Fader & Hardie (2007), "How to project customer retention", J. Interactive Marketing
  21(1): 1,000 customers, years 0-7 used for fitting; "Regular" alpha = 0.704, beta = 1.182;
  "High End" alpha = 0.668, beta = 3.806 with LL = -1611.2.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import betaln

from winback.analytics.clv import BetaGeoModel, GammaGammaModel, ParetoNBDModel, ShiftedBetaGeometricModel

# Table 1 of Fader & Hardie (2007): customers still active at the start of years 0..12
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]


def test_cdnow_summary_from_the_transaction_log_matches_the_published_summary(cdnow_exact, cdnow_csv):
    assert len(cdnow_exact.x) == 2357
    np.testing.assert_array_equal(cdnow_exact.id, cdnow_csv.id)
    np.testing.assert_array_equal(cdnow_exact.x, cdnow_csv.x)
    assert int(cdnow_exact.repeat.sum()) == 946
    np.testing.assert_allclose(cdnow_exact.t_x, cdnow_csv.t_x, atol=0.005 + 1e-9)
    np.testing.assert_allclose(cdnow_exact.T, cdnow_csv.T, atol=0.005 + 1e-9)
    np.testing.assert_allclose(cdnow_exact.zbar, cdnow_csv.zbar, atol=0.01 + 1e-9)
    assert cdnow_exact.T.max() == pytest.approx(39 - 1 / 7)  # first purchase 1997-01-01


def test_bgnbd_reproduces_fader_hardie_lee_2005(cdnow_exact, cdnow_csv):
    m = BetaGeoModel().fit(cdnow_exact.x, cdnow_exact.t_x, cdnow_exact.T)
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert round(m.params_[name], 3) == value, name
    assert round(m.log_likelihood_, 1) == -9582.4
    assert m.log_likelihood_ == pytest.approx(-9582.429, abs=5e-4)  # CLVTools' figure
    assert m.n_customers_ == 2357 and m.converged_
    # the 2-decimal file gives the same estimates to the published rounding
    c = BetaGeoModel().fit(cdnow_csv.x, cdnow_csv.t_x, cdnow_csv.T)
    for name, value in published.items():
        assert round(c.params_[name], 3) == value, name
    assert round(c.log_likelihood_, 1) == -9582.4


def test_pareto_nbd_reproduces_fader_hardie_2005(cdnow_exact):
    m = ParetoNBDModel().fit(cdnow_exact.x, cdnow_exact.t_x, cdnow_exact.T)
    for name, value in {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}.items():
        assert round(m.params_[name], 2) == value, name
    assert round(m.log_likelihood_, 2) == -9594.98
    clvtools = {"r": 0.55315, "alpha": 10.57633, "s": 0.60625, "beta": 11.67150}
    for name, value in clvtools.items():
        assert m.params_[name] == pytest.approx(value, rel=2e-3), name
    se = {"r": 0.0476264, "alpha": 0.8427222, "s": 0.1872594, "beta": 6.2105448}
    for name, value in se.items():
        assert m.standard_errors_[name] == pytest.approx(value, rel=1e-2), name


def test_gamma_gamma_reproduces_the_946_repeat_buyers(cdnow_exact):
    g = GammaGammaModel().fit(cdnow_exact.x, cdnow_exact.zbar)
    assert g.n_customers_ == 946
    assert round(g.params_["p"], 2) == 6.25
    assert round(g.params_["q"], 2) == 3.74
    assert round(g.params_["gamma"], 2) == 15.44
    assert g.log_likelihood_ == pytest.approx(-4055.9177, abs=1e-3)


def _b3(alpha: float, beta: float, active: list[int]) -> float:
    """Fader & Hardie (2007) eq. (B3), written out independently of the model code."""
    active = np.asarray(active, dtype=float)
    t = np.arange(1, len(active))
    lost = active[:-1] - active[1:]
    log_p = betaln(alpha + 1, beta + t - 1) - betaln(alpha, beta)
    log_s = betaln(alpha, beta + t[-1]) - betaln(alpha, beta)
    return float(lost @ log_p + active[-1] * log_s)


@pytest.mark.parametrize(
    ("survivors", "alpha", "beta"),
    [(REGULAR, 0.704, 1.182), (HIGH_END, 0.668, 3.806)],
    ids=["regular", "high-end"],
)
def test_sbg_reproduces_fader_hardie_2007(survivors, alpha, beta):
    m = ShiftedBetaGeometricModel().fit(np.arange(8), survivors[:8])
    assert round(m.params_["alpha"], 3) == alpha
    assert round(m.params_["beta"], 3) == beta
    assert m.log_likelihood_ == pytest.approx(_b3(m.params_["alpha"], m.params_["beta"], survivors[:8]), rel=1e-12)
    assert m.log_likelihood_ >= _b3(alpha, beta, survivors[:8])  # the published point is not better
    assert m.n_customers_ == 1000
    # the model's 12-year projection stays close to the hold-out years (FH 2007, Figure 5)
    projected = m.expected_active(1000, np.arange(8, 13))
    assert np.max(np.abs(projected - np.array(survivors[8:])) / np.array(survivors[8:])) < 0.05


def test_sbg_high_end_log_likelihood_and_derl():
    m = ShiftedBetaGeometricModel().fit(np.arange(8), HIGH_END[:8])
    assert round(m.log_likelihood_, 1) == -1611.2
    # DERL of the high-end survivors after 7 renewals at 10% (shifted_beta_geometric_py: 7.530)
    assert m.discounted_expected_residual_lifetime(7, 0.10) == pytest.approx(7.530, abs=5e-4)

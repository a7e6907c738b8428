"""Benchmark the CLV models against lifetimes 0.11.3 on simulated customers.

    python benchmarks/bench_clv.py [--customers 1000000] [--pnbd-customers 1000000] [--seed 1]
                                   [--skip-lifetimes] [--skip-pnbd]

Data: customers acquired uniformly over half a year and observed for a year, in whole days
(T = 182..364 days, recency floored to a day, spend in cents) - the resolution of a real
transaction log, so many customers share the same (frequency, recency, T). Purchases follow
the BG/NBD (resp. Pareto/NBD) model with Fader, Hardie & Lee's CDNOW estimates converted to
days; spend per purchase follows the Gamma-Gamma model with their CDNOW estimates.

One pipeline per library, on the same data:
  fit the transaction model and Gamma-Gamma, then for every customer P(alive), expected
  purchases over the next 52 weeks and the 12-month discounted CLV (1% a month).
ours: BetaGeoModel / ParetoNBDModel + GammaGammaModel (deduplicated sufficient statistics);
lifetimes: BetaGeoFitter / ParetoNBDFitter + GammaGammaFitter, conditional_probability_alive,
conditional_expected_number_of_purchases_up_to_time, customer_lifetime_value.

Prints seconds per step, the speed-up, the largest relative difference of the fitted
parameters and of the predictions. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from winback.analytics.clv import BetaGeoModel, GammaGammaModel, ParetoNBDModel
from winback.analytics.clv.simulate import simulate_bgnbd, simulate_gamma_gamma, simulate_pareto_nbd

DAYS_PER_WEEK = 7.0
BGNBD = {"r": 0.243, "alpha": 4.414 * DAYS_PER_WEEK, "a": 0.793, "b": 2.426}
PNBD = {"r": 0.55, "alpha": 10.58 * DAYS_PER_WEEK, "s": 0.61, "beta": 11.67 * DAYS_PER_WEEK}
GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
HORIZON_DAYS = 364.0  # 52 weeks
MONTHS, DISCOUNT = 12, 0.01


def make_data(kind: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    T = rng.integers(182, 365, n).astype(np.float64)
    if kind == "bgnbd":
        x, tx, T = simulate_bgnbd(n, *BGNBD.values(), T, rng)
    else:
        x, tx, T = simulate_pareto_nbd(n, *PNBD.values(), T, rng)
    tx = np.floor(tx)
    m = np.round(simulate_gamma_gamma(x, *GG.values(), rng), 2)
    m[(x > 0) & (m <= 0)] = 0.01
    return x, tx, T, m


class Clock:
    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def run(self, name: str, fn: Callable):
        began = time.perf_counter()
        out = fn()
        self.steps[name] = time.perf_counter() - began
        return out

    @property
    def total(self) -> float:
        return sum(self.steps.values())


def ours(kind: str, x, tx, T, m):
    clock = Clock()
    cls = BetaGeoModel if kind == "bgnbd" else ParetoNBDModel
    model = clock.run("fit " + kind, lambda: cls().fit(x, tx, T))
    gg = clock.run("fit gamma-gamma", lambda: GammaGammaModel().fit(x, m))
    palive = clock.run("P(alive)", lambda: model.probability_alive(x, tx, T))
    purchases = clock.run("expected purchases 52w", lambda: model.expected_purchases(HORIZON_DAYS, x, tx, T))
    clv = clock.run(
        "CLV 12 months",
        lambda: gg.customer_lifetime_value(model, x, tx, T, m, horizon_months=MONTHS, discount_rate_monthly=DISCOUNT, time_unit_days=1),
    )
    params = dict(model.params_) | {f"gg.{k}": v for k, v in gg.params_.items()}
    return clock, params, (palive, purchases, clv), (model, gg)


def theirs(kind: str, x, tx, T, m, seed: int):
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter

    xs, txs, Ts, ms = (pd.Series(a) for a in (x, tx, T, m))
    rep = xs > 0
    clock = Clock()
    np.random.seed(seed)  # lifetimes' Pareto/NBD starts from random initial values
    cls = BetaGeoFitter if kind == "bgnbd" else ParetoNBDFitter
    model = clock.run("fit " + kind, lambda: cls().fit(xs, txs, Ts))
    gg = clock.run("fit gamma-gamma", lambda: GammaGammaFitter().fit(xs[rep], ms[rep]))
    palive = clock.run("P(alive)", lambda: np.asarray(model.conditional_probability_alive(xs, txs, Ts)))
    purchases = clock.run(
        "expected purchases 52w",
        lambda: np.asarray(model.conditional_expected_number_of_purchases_up_to_time(HORIZON_DAYS, xs, txs, Ts)),
    )
    clv = clock.run(
        "CLV 12 months",
        lambda: np.asarray(gg.customer_lifetime_value(model, xs, txs, Ts, ms, time=MONTHS, discount_rate=DISCOUNT, freq="D")),
    )
    params = model.params_.to_dict() | {f"gg.{'gamma' if k == 'v' else k}": v for k, v in gg.params_.to_dict().items()}
    return clock, params, (palive, purchases, clv)


def max_rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.abs(b) > 1e-12
    return float(np.max(np.abs(a[keep] - b[keep]) / np.abs(b[keep]))) if np.any(keep) else 0.0


def compare(kind: str, n: int, seed: int, with_lifetimes: bool) -> None:
    x, tx, T, m = make_data(kind, n, seed)
    title = "BG/NBD + Gamma-Gamma" if kind == "bgnbd" else "Pareto/NBD + Gamma-Gamma"
    print(f"\n== {title}: {n:,} customers, {int((x > 0).sum()):,} with repeat purchases ==")
    mine, my_params, my_pred, (model, gg) = ours(kind, x, tx, T, m)
    print(f"   distinct (frequency, recency, T): {model.n_unique_:,}; distinct (frequency, monetary): {gg.n_unique_:,}")
    if not with_lifetimes:
        for step, sec in mine.steps.items():
            print(f"   {step:<24} ours {sec:8.2f} s")
        print(f"   {'total':<24} ours {mine.total:8.2f} s")
        print("   params", {k: round(v, 5) for k, v in my_params.items()})
        return
    ref, ref_params, ref_pred = theirs(kind, x, tx, T, m, seed)
    for step in mine.steps:
        a, b = mine.steps[step], ref.steps[step]
        print(f"   {step:<24} ours {a:8.2f} s   lifetimes {b:8.2f} s   x{b / max(a, 1e-9):7.1f}")
    print(f"   {'total':<24} ours {mine.total:8.2f} s   lifetimes {ref.total:8.2f} s   x{ref.total / mine.total:7.1f}")
    diffs = {k: abs(my_params[k] / ref_params[k] - 1) for k in my_params}
    worst = max(diffs, key=diffs.get)
    print(f"   max relative parameter difference: {diffs[worst]:.2e} ({worst})")
    print("   ours     ", {k: round(v, 5) for k, v in my_params.items()})
    print("   lifetimes", {k: round(v, 5) for k, v in ref_params.items()})
    names = ("P(alive)", "expected purchases", "CLV")
    print("   max relative prediction difference (each at its own fit): "
          + ", ".join(f"{nm} {max_rel(a, b):.1e}" for nm, a, b in zip(names, my_pred, ref_pred, strict=True)))
    # at lifetimes' parameters our formulas reproduce lifetimes' numbers
    cls = BetaGeoModel if kind == "bgnbd" else ParetoNBDModel
    at = cls().set_params(**{k: v for k, v in ref_params.items() if not k.startswith("gg.")})
    gg_at = GammaGammaModel().set_params(**{k[3:]: v for k, v in ref_params.items() if k.startswith("gg.")})
    same = (
        at.probability_alive(x, tx, T),
        at.expected_purchases(HORIZON_DAYS, x, tx, T),
        gg_at.customer_lifetime_value(at, x, tx, T, m, horizon_months=MONTHS, discount_rate_monthly=DISCOUNT, time_unit_days=1),
    )
    print("   ... at lifetimes' parameters: "
          + ", ".join(f"{nm} {max_rel(a, b):.1e}" for nm, a, b in zip(names, same, ref_pred, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--pnbd-customers", type=int, default=None, help="default: --customers (lifetimes needs minutes at 1M)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-lifetimes", action="store_true")
    parser.add_argument("--skip-pnbd", action="store_true")
    args = parser.parse_args()
    import scipy

    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    compare("bgnbd", args.customers, args.seed, not args.skip_lifetimes)
    if not args.skip_pnbd:
        compare("pnbd", args.pnbd_customers or args.customers, args.seed + 1, not args.skip_lifetimes)


if __name__ == "__main__":
    main()

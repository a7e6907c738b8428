"""Fixtures for the CLV tests: the CDNOW golden data (from tests/golden/cdnow) and lifetimes."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from winback.analytics.clv import summary_from_transactions

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "cdnow"


@dataclass(frozen=True)
class Cdnow:
    """Calibration-period summary of the 2,357 CDNOW customers (weeks)."""

    id: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    zbar: np.ndarray

    @property
    def repeat(self) -> np.ndarray:
        return self.x > 0


def _read_transactions():
    ids, dates, amounts = [], [], []
    with open(GOLDEN / "CDNOW_sample.txt", encoding="ascii") as fh:
        for line in fh:
            _, sample_id, day, _, amount = line.split()
            ids.append(int(sample_id))
            dates.append(f"{day[:4]}-{day[4:6]}-{day[6:]}")
            amounts.append(float(amount))
    return np.array(ids), np.array(dates, dtype="datetime64[D]"), np.array(amounts)


@pytest.fixture(scope="session")
def cdnow_transactions():
    """(sample customer id, date, dollar value) of all 6,919 CDNOW sample transactions."""
    return _read_transactions()


@pytest.fixture(scope="session")
def cdnow_exact(cdnow_transactions) -> Cdnow:
    """The summary derived from the transaction log: recency and T are days / 7 (unrounded)."""
    ids, dates, amounts = cdnow_transactions
    s = summary_from_transactions(ids, dates, amounts, np.datetime64("1997-09-30"), time_unit="day")
    return Cdnow(s.customer_id, s.frequency, s.recency / 7, s.T / 7, s.monetary_value)


@pytest.fixture(scope="session")
def cdnow_csv() -> Cdnow:
    """The published 2-decimal summary file."""
    with open(GOLDEN / "cdnow_customers_summary_with_transactions.csv", encoding="ascii") as fh:
        rows = list(csv.DictReader(fh))
    col = {k: np.array([float(r[k]) for r in rows]) for k in ("ID", "x", "t_x", "T", "zbar")}
    return Cdnow(col["ID"].astype(int), col["x"], col["t_x"], col["T"], col["zbar"])


def import_lifetimes():
    """lifetimes 0.11.3 (a test-only dependency), made importable on current NumPy.

    With numpy 2.4, pandas 3.1 and scipy 1.17 it imports and runs unpatched. Should a future
    NumPy drop something it uses, the removed aliases are restored here before retrying.
    ``lifetimes.datasets`` (which needs pkg_resources) is never imported: the data come from
    tests/golden.
    """
    try:
        import lifetimes
    except AttributeError:  # pragma: no cover - depends on the installed NumPy
        for name, value in {"float": float, "int": int, "bool": bool, "object": object, "NaN": np.nan, "Inf": np.inf}.items():
            if not hasattr(np, name):
                setattr(np, name, value)
        import lifetimes
    except ImportError:  # pragma: no cover
        pytest.skip("lifetimes is not installed (pip install -e '.[test]')")
    return lifetimes

"""Customer lifetime value models: pure NumPy/SciPy, no I/O.

- ``historical``: CLV = average purchase value x purchases per period x expected lifespan.
- ``BetaGeoModel`` (BG/NBD, Fader, Hardie & Lee 2005) and ``ParetoNBDModel`` (Schmittlein,
  Morrison & Colombo 1987) for non-contractual repeat buying: P(alive), expected purchases.
- ``GammaGammaModel`` (Colombo & Jiang 1999; Fader, Hardie & Lee 2005) for spend per purchase,
  and ``customer_lifetime_value`` (discounted, lifetimes-compatible).
- ``ShiftedBetaGeometricModel`` (Fader & Hardie 2007, 2010) for contractual retention and the
  discounted expected residual lifetime of subscribers.
- ``summary_from_transactions``: frequency / recency / T / monetary value from a transaction log.

Models follow a scikit-learn-like API: ``Model(penalizer=0.0).fit(...)`` returns the model;
fitted values end in ``_`` (``params_``, ``log_likelihood_``, ``standard_errors_``,
``n_customers_``). Fitting deduplicates the sufficient statistics and weights each distinct
row by its count, so a million customers fit in seconds.
"""

from ._base import ConvergenceWarning, NotFittedError
from .bgnbd import BetaGeoModel
from .gamma_gamma import GammaGammaModel
from .historical import historical_clv, historical_clv_from_churn_rate, lifespan_from_churn_rate
from .pnbd import ParetoNBDModel
from .sbg import ShiftedBetaGeometricModel
from .summary import RFMSummary, summary_from_transactions
from .value import customer_lifetime_value, periods_per_month_for

__all__ = [
    "BetaGeoModel",
    "ConvergenceWarning",
    "GammaGammaModel",
    "NotFittedError",
    "ParetoNBDModel",
    "RFMSummary",
    "ShiftedBetaGeometricModel",
    "customer_lifetime_value",
    "historical_clv",
    "historical_clv_from_churn_rate",
    "lifespan_from_churn_rate",
    "periods_per_month_for",
    "summary_from_transactions",
]

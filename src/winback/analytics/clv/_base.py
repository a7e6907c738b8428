"""Shared plumbing of the CLV models: input checks, deduplication, maximum likelihood.

Every model is fitted the same way:

1. the per-customer sufficient statistics are **deduplicated** (``np.unique`` over the rows,
   the counts become frequency weights) - customers with the same ``(frequency, recency, T)``
   contribute the same log-likelihood, so the likelihood is evaluated once per distinct row;
2. the weighted mean negative log-likelihood (plus an optional L2 penalty) is minimised over
   the **log-parameters** by a projected BFGS with analytic gradients;
3. a few Newton steps with a numerical Hessian polish the optimum (the Hessian is needed
   anyway for the standard errors), so fitted parameters are reproducible to ~1e-8;
4. ``standard_errors_`` come from the inverse Hessian of the total negative log-likelihood
   at the optimum (delta method from log- to natural parameters).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ConvergenceWarning", "NotFittedError"]

LOG_BOUND = 25.0  # log-parameters stay in [-25, 25]: parameters in [1.4e-11, 7.2e10]


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before the gradient was small: the estimates may be imprecise."""


class NotFittedError(ValueError):
    """A method that needs fitted parameters was called before ``fit``."""


# --------------------------------------------------------------------------- BLAS-free sums


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product without BLAS.

    ``a @ b`` goes to OpenBLAS, which runs large dot products on a thread pool; on a busy
    machine the spinning threads made a 20,000-customer fit ~50x slower. NumPy's own
    einsum loop is single-threaded and as fast for these sizes.
    """
    return float(np.einsum("i,i->", a, b))


def matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m @ v`` without BLAS (see ``dot``)."""
    return np.einsum("ij,j->i", m, v)


# --------------------------------------------------------------------------- input checks


def as_float_array(name: str, values) -> np.ndarray:
    """A finite 1-D float64 array (scalars become length-1 arrays)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = as_float_array("weights", weights)
    if w.shape[0] != n:
        raise ValueError(f"weights has {w.shape[0]} rows, expected {n}")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    return w


def check_rft(frequency, recency, T, weights=None):
    """Validate (frequency, recency, T[, weights]) for fitting; drop zero-weight rows."""
    x = as_float_array("frequency", frequency)
    tx = as_float_array("recency", recency)
    t = as_float_array("T", T)
    n = x.shape[0]
    if n == 0:
        raise ValueError("no customers to fit")
    if tx.shape[0] != n or t.shape[0] != n:
        raise ValueError(f"frequency, recency and T must have the same length ({n}, {tx.shape[0]}, {t.shape[0]})")
    w = check_weights(weights, n)
    _check_values(x, tx, t)
    keep = w > 0
    if not np.all(keep):
        x, tx, t, w = x[keep], tx[keep], t[keep], w[keep]
    if x.shape[0] == 0:
        raise ValueError("all weights are zero")
    return x, tx, t, w


def _check_values(x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> None:
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ValueError("frequency must contain non-negative whole numbers (repeat purchases)")
    if np.any(tx < 0):
        raise ValueError("recency must be non-negative")
    if np.any(tx > t):
        raise ValueError("recency must not exceed T (time between first purchase and the end of observation)")
    if np.any(tx[x == 0] != 0):
        raise ValueError("recency must be 0 for customers with frequency 0")


def broadcast_rft(frequency, recency, T, *, check: bool = True):
    """Broadcast prediction inputs to 1-D float arrays of one length (scalars allowed)."""
    x, tx, t = np.broadcast_arrays(
        np.asarray(frequency, dtype=np.float64), np.asarray(recency, dtype=np.float64), np.asarray(T, dtype=np.float64)
    )
    shape = x.shape
    x, tx, t = (np.ascontiguousarray(a).reshape(-1) for a in (x, tx, t))
    if check:
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(tx)) and np.all(np.isfinite(t))):
            raise ValueError("frequency, recency and T must be finite")
        _check_values(x, tx, t)
    return x, tx, t, shape


def reshape_out(values: np.ndarray, shape: tuple[int, ...]):
    """Return a scalar float for scalar inputs, else an array of the broadcast shape."""
    if shape == ():
        return float(values.reshape(-1)[0])
    return values.reshape(shape)


# --------------------------------------------------------------------------- deduplication


def integer_codes(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``col`` (sorted) and each row's index into them.

    Whole numbers in a modest range (days, weeks, counts) take an O(n) path without sorting.
    """
    n = col.shape[0]
    if n == 0:
        return col[:0], np.zeros(0, dtype=np.int64)
    lo, hi = col.min(), col.max()
    if hi - lo <= 4 * n + 1024 and np.array_equal(col, np.floor(col)):
        offset = (col - lo).astype(np.int64)
        present = np.zeros(int(hi - lo) + 1, dtype=bool)
        present[offset] = True
        rank = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(np.float64) + lo, rank[offset]
    uniq, inv = np.unique(col, return_inverse=True)
    return uniq, inv.reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class Unique:
    """Distinct rows of several columns: ``columns[k][inverse] == original column k``."""

    columns: tuple[np.ndarray, ...]
    inverse: np.ndarray
    weights: np.ndarray  # summed weights (or counts) per distinct row


def unique_rows(columns: Sequence[np.ndarray], weights: np.ndarray | None = None) -> Unique:
    """Deduplicate rows of equally long 1-D columns, summing ``weights`` (default: counts).

    Works through one int64 key per row (the product of per-column codes), so it costs a few
    1-D passes instead of ``np.unique(axis=0)``'s structured sort (about 10x faster at 1M rows).
    """
    n = columns[0].shape[0]
    key = np.zeros(n, dtype=np.int64)
    size = 1
    for col in columns:
        _, codes = integer_codes(col)
        m = int(codes.max()) + 1 if n else 1
        if size * m >= 2**62:  # re-compress the key before it could overflow
            _, key = _rank(key)
            size = int(key.max()) + 1
        key = key * m + codes
        size *= m
    if size <= 8 * n + 4096:  # dense key: counting instead of sorting
        present = np.zeros(size, dtype=bool)
        present[key] = True
        rank = np.cumsum(present, dtype=np.int64) - 1
        inverse = rank[key]
        first = _first_index(inverse, int(rank[-1]) + 1)
    else:
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    k = first.shape[0]
    w = np.bincount(inverse, weights=weights, minlength=k) if weights is not None else np.bincount(inverse, minlength=k)
    return Unique(tuple(col[first] for col in columns), inverse, w.astype(np.float64))


def _rank(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq, inv.reshape(-1).astype(np.int64)


def _first_index(inverse: np.ndarray, k: int) -> np.ndarray:
    """Index of the first row of each group (any row of the group would do: rows are equal)."""
    first = np.empty(k, dtype=np.int64)
    first[inverse[::-1]] = np.arange(inverse.shape[0] - 1, -1, -1, dtype=np.int64)
    return first


# --------------------------------------------------------------------------- optimisation


@dataclass
class Optimum:
    theta: np.ndarray  # log-parameters at the optimum
    objective: float  # mean (penalised) negative log-likelihood
    hessian: np.ndarray  # Hessian of the mean objective w.r.t. theta
    converged: bool
    n_evaluations: int
    message: str


def repeat_rate(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(purchase rate, mean T) of a weighted sample: starting values for the count models."""
    mean_x = float(np.average(x, weights=w))
    mean_t = float(np.average(t, weights=w))
    return max(mean_x, 0.05) / max(mean_t, 1e-9), mean_t


def numerical_gradient(fun: Callable[[np.ndarray], float], theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences (error ~1e-10 for smooth objectives of order one)."""
    g = np.empty_like(theta)
    for i in range(theta.shape[0]):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (fun(theta + e) - fun(theta - e)) / (2 * h)
    return g


def hessian_from_gradient(grad: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    k = theta.shape[0]
    H = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        H[:, j] = (grad(theta + e) - grad(theta - e)) / (2 * h)
    return (H + H.T) / 2


def hessian_from_values(fun: Callable[[np.ndarray], float], theta: np.ndarray, h: float = 1e-4) -> np.ndarray:
    k = theta.shape[0]
    f0 = fun(theta)
    H = np.empty((k, k))
    plus = np.empty(k)
    minus = np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        plus[i], minus[i] = fun(theta + e), fun(theta - e)
        H[i, i] = (plus[i] - 2 * f0 + minus[i]) / h**2
    for i in range(k):
        for j in range(i + 1, k):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i] = h
            ej[j] = h
            v = (
                fun(theta + ei + ej) - fun(theta + ei - ej) - fun(theta - ei + ej) + fun(theta - ei - ej)
            ) / (4 * h**2)
            H[i, j] = H[j, i] = v
    return H


def minimize_log_params(
    fun: Callable[[np.ndarray], float],
    theta0: np.ndarray,
    fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    *,
    upper: Sequence[float] | None = None,
) -> Optimum:
    """Minimise ``fun`` (a mean negative log-likelihood over log-parameters).

    Projected BFGS (bounded to ``|theta| <= 25``, see ``_bfgs``) followed by Newton steps with a
    numerical Hessian, which polish the optimum to ~1e-9 and give the Hessian for the
    standard errors. ``fun_and_grad`` returns the value and the analytic gradient; without it
    the gradient is taken by central differences. ``upper`` tightens the upper bounds of the
    log-parameters.
    """
    calls = 0

    def f(theta: np.ndarray) -> float:
        nonlocal calls
        calls += 1
        with np.errstate(all="ignore"):
            v = float(fun(theta))
        return v if np.isfinite(v) else np.inf

    if fun_and_grad is None:

        def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
            return f(theta), numerical_gradient(f, theta)

        def hess(theta: np.ndarray) -> np.ndarray:
            return hessian_from_values(f, theta)

    else:

        def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
            nonlocal calls
            calls += 1
            with np.errstate(all="ignore"):
                v, gr = fun_and_grad(theta)
            v = float(v)
            return (v if np.isfinite(v) else np.inf), np.asarray(gr, dtype=np.float64)

        def hess(theta: np.ndarray) -> np.ndarray:
            return hessian_from_gradient(lambda th: fg(th)[1], theta)

    lower_b = np.full(len(theta0), -LOG_BOUND)
    upper_b = np.full(len(theta0), LOG_BOUND)
    if upper is not None:
        upper_b = np.minimum(upper_b, np.asarray(upper, dtype=float))

    def clip(th: np.ndarray) -> np.ndarray:
        return np.clip(th, lower_b, upper_b)

    theta, message = _bfgs(fg, clip(np.asarray(theta0, dtype=np.float64)), clip, lower_b, upper_b)
    H = hess(theta)
    theta, value, _ = _newton(fg, f, theta, H, clip, max_iter=8)
    gr = fg(theta)[1]
    at_bound = (theta <= lower_b + 1e-6) | (theta >= upper_b - 1e-6)
    scale = max(1.0, abs(value))
    converged = bool(np.all(np.abs(gr[~at_bound]) <= 1e-5 * scale)) and bool(np.isfinite(value))
    if not converged:
        warnings.warn(
            f"the optimiser did not converge ({message}; |gradient| = {np.max(np.abs(gr)):.2e}); "
            "the estimates may be imprecise - try a penalizer",
            ConvergenceWarning,
            stacklevel=3,
        )
    return Optimum(theta, value, H, converged, calls, message)


def _bfgs(
    fg, theta: np.ndarray, clip, lower: np.ndarray, upper: np.ndarray, max_iter: int = 1000
) -> tuple[np.ndarray, str]:
    """Projected BFGS with Armijo backtracking, in plain NumPy on k = 2..4 parameters.

    Written out instead of ``scipy.optimize.minimize(method="L-BFGS-B")``: that routine calls
    OpenBLAS/LAPACK on every iteration, and on a machine whose other cores are busy each call
    waits ~1 ms for OpenBLAS's thread pool - ten times the cost of a likelihood evaluation of
    50,000 distinct customers. Here the k x k updates are element-wise (no BLAS).
    """
    k = theta.shape[0]
    value, grad = fg(theta)
    if not np.isfinite(value):
        return theta, "the starting point has no finite likelihood"
    hinv = np.eye(k) / max(1.0, float(np.max(np.abs(grad))))
    scaled = False
    for _ in range(max_iter):
        active = ((theta <= lower) & (grad > 0)) | ((theta >= upper) & (grad < 0))
        pg = np.where(active, 0.0, grad)
        if np.max(np.abs(pg)) <= 1e-10 * max(1.0, abs(value)):
            return theta, "projected gradient below tolerance"
        direction = -(hinv * pg).sum(axis=1)
        direction[active] = 0.0
        if not float((direction * pg).sum()) < 0:  # not a descent direction: restart from steepest descent
            hinv = np.eye(k) / max(1.0, float(np.max(np.abs(pg))))
            scaled = False
            direction = -(hinv * pg).sum(axis=1)
        step = 1.0
        while True:
            trial = clip(theta + step * direction)
            trial_value, trial_grad = fg(trial)
            moved = trial - theta
            if np.isfinite(trial_value) and trial_value <= value + 1e-4 * float((grad * moved).sum()):
                break
            step *= 0.5
            if step < 1e-14 or not np.any(moved):
                return theta, "line search found no decrease"
        y = trial_grad - grad
        sy = float((moved * y).sum())
        if sy > 1e-12 * float(np.sqrt((moved * moved).sum() * (y * y).sum())):
            if not scaled:  # Shanno-Phua scaling of the first inverse Hessian
                hinv = np.eye(k) * sy / float((y * y).sum())
                scaled = True
            rho = 1.0 / sy
            hy = (hinv * y).sum(axis=1)
            hinv = (
                hinv
                - rho * (np.outer(moved, hy) + np.outer(hy, moved))
                + (rho * rho * float((y * hy).sum()) + rho) * np.outer(moved, moved)
            )
        decrease = value - trial_value
        theta, value, grad = trial, trial_value, trial_grad
        if decrease <= 1e-16 * max(1.0, abs(value)) and np.max(np.abs(moved)) < 1e-12:
            return theta, "no further progress"
    return theta, "iteration limit reached"


def _newton(fg, f, theta: np.ndarray, H: np.ndarray, clip, max_iter: int) -> tuple[np.ndarray, float, bool]:
    """Damped Newton steps with a fixed Hessian ``H`` (a chord method: linear convergence at a
    rate set by how well H matches the Hessian at the optimum). Returns (theta, value, converged)."""
    value, gr = fg(theta)
    try:
        np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return theta, value, False
    if not np.isfinite(value):
        return theta, value, False
    for _ in range(max_iter):
        step = np.linalg.solve(H, gr)
        if not np.all(np.isfinite(step)):
            return theta, value, False
        if np.max(np.abs(step)) < 1e-10:
            return theta, value, True
        t = 1.0
        while True:
            trial = clip(theta - t * step)
            v = f(trial)
            if v <= value + 1e-13 * max(1.0, abs(value)):
                break
            t /= 4
            if t < 1e-3:
                # no decrease: either converged to rounding level or H is a poor model
                return theta, value, bool(np.max(np.abs(step)) < 1e-6)
        theta = trial
        value, gr = fg(theta)
    return theta, value, False


def standard_errors(params: np.ndarray, hessian_mean: np.ndarray, total_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Covariance and standard errors of the natural parameters.

    ``hessian_mean`` is the Hessian of the *mean* negative log-likelihood w.r.t. the
    log-parameters; the Hessian of the total is ``total_weight`` times it. At the optimum the
    gradient vanishes, so cov(p) = D cov(theta) D with D = diag(p) (delta method).
    """
    k = params.shape[0]
    try:
        cov_theta = np.linalg.inv(hessian_mean * total_weight)
    except np.linalg.LinAlgError:
        cov_theta = np.full((k, k), np.nan)
    cov = cov_theta * np.outer(params, params)
    diag = np.diag(cov)
    se = np.where(diag >= 0, np.sqrt(np.abs(diag)), np.nan)
    return cov, se


class FittedModel:
    """The common fitted-state API: ``params_``, ``log_likelihood_``, ``standard_errors_`` ..."""

    param_names: tuple[str, ...] = ()

    def __init__(self, penalizer: float = 0.0):
        if penalizer < 0:
            raise ValueError("penalizer must be non-negative")
        self.penalizer = float(penalizer)

    def _params(self) -> tuple[float, ...]:
        params = getattr(self, "params_", None)
        if params is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() first")
        return tuple(float(params[name]) for name in self.param_names)

    def _store(self, optimum: Optimum, total_weight: float, n_unique: int, loglik_total: float) -> None:
        p = np.exp(optimum.theta)
        cov, se = standard_errors(p, optimum.hessian, total_weight)
        self.params_ = {name: float(v) for name, v in zip(self.param_names, p, strict=True)}
        self.log_likelihood_ = float(loglik_total)
        self.standard_errors_ = {name: float(v) for name, v in zip(self.param_names, se, strict=True)}
        self.covariance_ = cov
        self.n_customers_ = float(total_weight)
        self.n_unique_ = int(n_unique)
        self.converged_ = optimum.converged
        self.n_evaluations_ = optimum.n_evaluations

    def _maximise(self, data, theta0, upper=None):
        """Fit by minimising the model's mean negative log-likelihood ``self._objective(theta,
        data, with_grad)`` over log-parameters from ``theta0``; store the results; return self.
        ``data`` carries ``total`` (sum of weights) and ``n_unique`` (distinct rows)."""
        kwargs = {} if upper is None else {"upper": upper}
        optimum = minimize_log_params(
            lambda th: self._objective(th, data, False),
            theta0,
            lambda th: self._objective(th, data, True),
            **kwargs,
        )
        loglik = -self._objective(optimum.theta, data, False, penalised=False) * data.total
        self._store(optimum, data.total, data.n_unique, loglik)
        return self

    def _start(self, initial_params: dict | None, default) -> np.ndarray:
        """Log starting values: the caller's ``initial_params`` or ``default`` (a callable)."""
        if initial_params is not None:
            return np.log([initial_params[k] for k in self.param_names])
        return np.log(default())

    def set_params(self, **params: float):
        """Use given parameter values (e.g. published estimates) without fitting."""
        missing = set(self.param_names) - set(params)
        if missing:
            raise ValueError(f"missing parameters: {sorted(missing)}")
        for name in self.param_names:
            if not params[name] > 0:
                raise ValueError(f"{name} must be positive")
        self.params_ = {name: float(params[name]) for name in self.param_names}
        return self

    def __repr__(self) -> str:
        params = getattr(self, "params_", None)
        inner = ", ".join(f"{k}={v:.4g}" for k, v in params.items()) if params else "not fitted"
        return f"{type(self).__name__}({inner})"

    def _penalty(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        """L2 penalty ``penalizer * sum(p**2)`` on the mean objective and its theta-gradient."""
        if self.penalizer == 0.0:
            return 0.0, np.zeros_like(p)
        return self.penalizer * float(np.sum(p**2)), 2 * self.penalizer * p**2

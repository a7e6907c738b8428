"""Log-space and hypergeometric helpers shared by the CLV models."""

from __future__ import annotations

import numpy as np
from scipy.special import hyp2f1

def log1mexp(d: np.ndarray) -> np.ndarray:
    """``log(1 - exp(d))`` for ``d <= 0``, accurate near 0 and for very negative d (Maechler 2012)."""
    d = np.minimum(d, 0.0)
    near = d > -np.log(2.0)
    out = np.empty_like(d)
    with np.errstate(divide="ignore"):
        np.expm1(d, out=out, where=near)
        np.negative(out, out=out, where=near)
        np.log(out, out=out, where=near)
        far = ~near
        np.exp(d, out=out, where=far)
        np.negative(out, out=out, where=far)
        np.log1p(out, out=out, where=far)
    return out


def hyp2f1_1bcz(b, c, z) -> np.ndarray:
    """Gauss's 2F1(1, b; c; z) for 0 <= z < 1 and 0 < b < c (the Pareto/NBD and sBG case).

    ``scipy.special.hyp2f1``, which is accurate here whenever its result is finite (within
    1e-10 of the continued fraction on random arguments), but returns NaN or inf in places
    near z = 1, e.g. for 2F1(1, 278; 280; 0.998); there Gauss's continued fraction
    (``hyp2f1_1bcz_cf``) takes over. (Pfaff's transformation to z/(z-1) is no way out:
    scipy returns finite garbage, 1e16-1e21, for e.g. 2F1(1, 16; 150; -4.5).)
    """
    b, c, z = np.broadcast_arrays(np.asarray(b, float), np.asarray(c, float), np.asarray(z, float))
    out = np.asarray(hyp2f1(1.0, b, c, z), dtype=float)
    bad = ~(np.isfinite(out) & (out > 0))
    if np.any(bad):
        out = out.copy()
        out[bad] = hyp2f1_1bcz_cf(b[bad], c[bad], z[bad])
    return out


def dlog_hyp2f1_1bcz_dz(b, c, z, F) -> np.ndarray:
    """d ln 2F1(1, b; c; z) / dz = (b/c) 2F1(2, b+1; c+1; z) / F, given F = 2F1(1, b; c; z);
    where scipy fails, central differences of the robust ``hyp2f1_1bcz``."""
    b, c, z, F = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (b, c, z, F)))
    out = np.asarray(b / c * hyp2f1(2.0, b + 1.0, c + 1.0, z) / F, dtype=float)
    bad = ~np.isfinite(out)
    if np.any(bad):
        out = out.copy()
        bb, cb, zb = b[bad], c[bad], z[bad]
        h = 1e-6 * np.minimum(zb + 1e-3, 1.0 - zb)
        lo = np.maximum(zb - h, 0.0)
        out[bad] = (np.log(hyp2f1_1bcz(bb, cb, zb + h)) - np.log(hyp2f1_1bcz(bb, cb, lo))) / (zb + h - lo)
    return out


def hyp2f1_1bcz_cf(b, c, z, tol: float = 1e-15, max_iter: int = 100000) -> np.ndarray:
    """2F1(1, b; c; z) by Gauss's continued fraction (modified Lentz, vectorised).

    With a = 0 in Gauss's fraction for 2F1(a+1, b; c+1; z) / 2F1(a, b; c; z):

        2F1(1, b; c; z) = 1 / (1 - d1 z / (1 - d2 z / (1 - ...))),
        d_{2n+1} = (c-1+n)(b+n) / ((c-1+2n)(c+2n)),  d_{2n+2} = (n+1)(c-b+n) / ((c+2n)(c+2n+1)).

    For 0 < b < c every d_j > 0 (a Stieltjes fraction in -z): it converges for all z < 1,
    and near z = 1 takes O(1/sqrt(1-z)) terms rather than the series' O(1/(1-z)).
    """
    b, c, z = (np.array(a, dtype=float) for a in np.broadcast_arrays(b, c, z))
    shape = b.shape
    b, c, z = b.reshape(-1), c.reshape(-1), z.reshape(-1)
    tiny = 1e-300
    f = np.ones_like(b)
    C = f.copy()
    D = np.zeros_like(b)
    active = np.arange(b.shape[0])
    for j in range(1, max_iter + 1):
        if active.shape[0] == 0:
            break
        bb, cc, zz = b[active], c[active], z[active]
        n = (j - 1) // 2
        if j % 2:
            d = (cc - 1 + n) * (bb + n) / ((cc - 1 + 2 * n) * (cc + 2 * n))
        else:
            d = (n + 1) * (cc - bb + n) / ((cc + 2 * n) * (cc + 2 * n + 1))
        a = -d * zz
        Dj = 1.0 + a * D[active]
        Dj = 1.0 / np.where(np.abs(Dj) < tiny, tiny, Dj)
        Cj = 1.0 + a / C[active]
        Cj = np.where(np.abs(Cj) < tiny, tiny, Cj)
        delta = Cj * Dj
        f[active] *= delta
        C[active] = Cj
        D[active] = Dj
        active = active[np.abs(delta - 1.0) > tol]
    out = 1.0 / f
    out[active] = np.nan
    return out.reshape(shape)

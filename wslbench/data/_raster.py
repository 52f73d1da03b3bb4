"""Private raster helpers shared by the synthetic generators (fundus, histology)."""

from __future__ import annotations

import numpy as np

_PATCH_HALVES = np.array([2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128, 181, 256, 512])


def _splat(h: int, w: int, params: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised rasterisation of ellipses.

    Args:
        h: image height.
        w: image width.
        params: ``(n, 7)`` rows ``(cy, cx, ry, rx, angle, opacity, softness)``.

    Returns:
        Flat pixel indices, opacities, inside flags and the owning row of every drawn
        element. The opacity is ``opacity · smoothstep(0.5 + (1 − d)/e)`` with ``d`` the
        normalised elliptical distance and ``e = max(softness, 1/min(ry, rx))`` the edge
        width (at least 1 px), so it is half of ``opacity`` on the boundary; ``inside``
        is ``d ≤ max(1, 0.5/min(ry, rx))``.
    """
    if len(params) == 0:
        e = np.zeros(0, np.int64)
        return e, np.zeros(0), np.zeros(0, bool), e
    cy, cx, ry, rx, angle, opacity, softness = params.T
    rmin = np.minimum(ry, rx)
    edge = np.maximum(softness, 1.0 / rmin)
    need = np.ceil(np.maximum(ry, rx) * (1.0 + edge / 2) + 1.0)
    # Few patch sizes: fewer vectorised groups at the price of some empty border pixels.
    half = _PATCH_HALVES[np.searchsorted(_PATCH_HALVES, need)]
    out_idx, out_a, out_in, out_own = [], [], [], []
    for k in np.unique(half):
        sel = np.flatnonzero(half == k)
        o = np.arange(-k, k + 1, dtype=np.float64)
        yy = np.round(cy[sel])[:, None, None] + o[None, :, None]
        xx = np.round(cx[sel])[:, None, None] + o[None, None, :]
        dy, dx = yy - cy[sel, None, None], xx - cx[sel, None, None]
        ca, sa = np.cos(angle[sel])[:, None, None], np.sin(angle[sel])[:, None, None]
        u = (dx * ca + dy * sa) / rx[sel, None, None]
        v = (-dx * sa + dy * ca) / ry[sel, None, None]
        d = np.sqrt(u * u + v * v)
        t = np.clip(0.5 + (1.0 - d) / edge[sel, None, None], 0.0, 1.0)
        alpha = opacity[sel, None, None] * t * t * (3.0 - 2.0 * t)
        inside = d <= np.maximum(1.0, 0.5 / rmin[sel])[:, None, None]
        yy, xx = np.broadcast_to(yy, d.shape), np.broadcast_to(xx, d.shape)
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w) & ((alpha > 1e-4) | inside)
        out_idx.append((yy[ok] * w + xx[ok]).astype(np.int64))
        out_a.append(alpha[ok])
        out_in.append(inside[ok])
        out_own.append(np.broadcast_to(sel[:, None, None], d.shape)[ok])
    return (np.concatenate(out_idx), np.concatenate(out_a), np.concatenate(out_in),
            np.concatenate(out_own))


def _smooth_texture(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Upsample a coarse grid with separable Gaussian-RBF interpolation matrices."""

    def matrix(n_out: int, n_in: int) -> np.ndarray:
        pos = (np.arange(n_out) + 0.5) / n_out * n_in - 0.5
        wts = np.exp(-0.5 * ((pos[:, None] - np.arange(n_in)[None, :]) / 0.8) ** 2)
        return wts / wts.sum(1, keepdims=True)

    return matrix(h, grid.shape[0]) @ grid @ matrix(w, grid.shape[1]).T


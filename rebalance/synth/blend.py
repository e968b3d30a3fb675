"""Gradient-domain (Poisson) blending of small patches, in log-RGB, with scipy only.

Blending in log space keeps a lesion's *relative* contrast (its redness as a ratio of the skin
around it) and takes absolute tone and lighting from the destination, so a lesion cut from light
skin lands correctly on dark skin. Unlike OpenCV's seamlessClone this never reads outside the
image: callers pass a patch whose one-pixel border lies inside the image (checked here).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import factorized


def disk(radius: float, half: int) -> np.ndarray:
    """Boolean disk of `radius` centred in a (2*half+1)^2 square."""
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    return yy**2 + xx**2 <= radius**2


@functools.lru_cache(maxsize=256)
def _solver(mask_bytes: bytes, shape: tuple[int, int]):
    """Factorised 5-point Laplacian on the mask's pixels (Dirichlet outside), cached per mask."""
    mask = np.frombuffer(mask_bytes, dtype=bool).reshape(shape)
    idx = -np.ones(shape, dtype=np.int64)
    ys, xs = np.nonzero(mask)
    n = len(ys)
    idx[ys, xs] = np.arange(n)
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.full(n, 4.0)]
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = idx[ys + dy, xs + dx]
        inside = nb >= 0
        rows.append(np.arange(n)[inside])
        cols.append(nb[inside])
        vals.append(np.full(inside.sum(), -1.0))
    a = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return factorized(a), ys, xs


def poisson_log(dest: np.ndarray, patch: np.ndarray, mask: np.ndarray, y0: int, x0: int) -> None:
    """Blend `patch` (hxwx3 float, linear RGB 0..255) into float `dest` in place at (y0, x0).

    Inside `mask` (hxw, False on the patch's one-pixel frame) the result keeps the patch's
    log-gradients; on the mask's boundary it meets `dest` exactly.
    """
    h, w = mask.shape
    if y0 < 0 or x0 < 0 or y0 + h > dest.shape[0] or x0 + w > dest.shape[1]:
        raise ValueError("patch reaches outside the image")
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        raise ValueError("mask touches the patch frame")
    region = dest[y0 : y0 + h, x0 : x0 + w]
    g = np.log1p(np.maximum(patch, 0.0))
    diff = np.log1p(np.maximum(region, 0.0)) - g  # the correction h is harmonic, = diff on the boundary
    solve, ys, xs = _solver(np.ascontiguousarray(mask).tobytes(), mask.shape)
    rhs = np.zeros((len(ys), 3))
    outside = ~mask
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        edge = outside[ny, nx]
        rhs[edge] += diff[ny[edge], nx[edge]]
    corr = np.stack([solve(rhs[:, c]) for c in range(3)], axis=1)
    region[ys, xs] = np.expm1(g[ys, xs] + corr)

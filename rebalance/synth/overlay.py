"""The lesion overlay of an ACNEDIT-style edit: blend bank lesions into one image, seamlessly.

Pure functions of an image, its detector analysis, the lesion bank and the settings of the
`synthesize.lesion_edit` group (no files, no params loading): `target_range` picks the lesion
counts to aim for inside a grade's bin, `edit_image` Poisson-blends lesions in log-RGB at free skin
pixels, inpaints the seams and matches grain.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy import ndimage as ndi

from rebalance.synth import bank, blend, detector

if TYPE_CHECKING:
    from rebalance.config.synth import LesionEdit

SPACING = 0.75  # blended disks may overlap in their outer quarter (skin, not lesion)


def target_range(bin_: tuple[int, float], current: int, cfg: LesionEdit) -> tuple[int, int] | None:
    """Counts to aim for from `current`: inside the bin (margin from its ends), above current."""
    lo = int(bin_[0])
    hi = lo + cfg.open_bin_span - 1 if math.isinf(bin_[1]) else int(bin_[1])
    m = int(cfg.bin_margin * (hi - lo))
    for a, b in ((lo + m, hi - m), (lo, hi)):
        a = max(a, current + 1)
        if a <= b:
            return a, b
    return None


def edit_image(
    image: np.ndarray,
    found: detector.Analysis,
    n_add: int,
    entries: list[bank.Entry],
    rng: np.random.Generator,
    cfg: LesionEdit,
) -> tuple[np.ndarray, list[list[int]]]:
    """Blend `n_add` bank lesions into `image`; return (result, disks [y, x, radius] of the edit).

    Every pixel outside the union of the returned disks equals the input's.
    """
    h, w, _ = image.shape
    ring = int(cfg.ring)
    skin = ndi.binary_erosion(found.skin, iterations=int(cfg.edge_margin))
    ys, xs = np.nonzero(skin)
    canvas = image.astype(np.float32)
    ty = found.peaks[:, 0].astype(float)
    tx = found.peaks[:, 1].astype(float)
    tr = np.full(len(ty), 3.0)
    placed: list[tuple[int, int, bank.Entry]] = []
    for _ in range(n_add if len(ys) else 0):
        entry = entries[int(rng.integers(len(entries)))]
        half, pad = entry.half, entry.half + ring + 1
        pick = rng.integers(len(ys), size=60)
        y, x = ys[pick], xs[pick]
        ok = (y >= pad) & (x >= pad) & (y < h - pad) & (x < w - pad)
        if len(ty):
            d = np.hypot(y[:, None] - ty[None, :], x[:, None] - tx[None, :])
            ok &= np.all(d >= SPACING * (entry.radius + tr[None, :]) + cfg.gap, axis=1)
        if not ok.any():
            continue
        j = int(np.argmax(ok))
        y, x = int(y[j]), int(x[j])
        blend.poisson_log(canvas, entry.patch, blend.disk(entry.radius, half), y - half, x - half)
        ty, tx, tr = np.append(ty, y), np.append(tx, x), np.append(tr, entry.radius)
        placed.append((y, x, entry))
    dest_noise = bank.grain(image, found.skin)
    seam = np.zeros((h, w), dtype=np.uint8)
    edit = np.zeros((h, w), dtype=bool)
    level = np.zeros((h, w), dtype=np.float32)
    disks = []
    for y, x, entry in placed:
        reach = int(math.ceil(entry.radius + ring))
        y0, y1, x0, x1 = max(0, y - reach), min(h, y + reach + 1), max(0, x - reach), min(w, x + reach + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(yy - y, xx - x)
        inside = d <= entry.radius
        level[y0:y1, x0:x1][inside] = math.sqrt(max(dest_noise**2 - entry.noise**2, 0.0))
        seam[y0:y1, x0:x1][np.abs(d - entry.radius) <= 1.0] = 1
        edit[y0:y1, x0:x1] |= d <= reach
        disks.append([y, x, reach])
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if placed:
        out = cv2.inpaint(out, seam, ring, cv2.INPAINT_TELEA)
        noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), 0.6)
        noise /= noise.std() + 1e-6
        level[seam > 0] = dest_noise
        out = np.clip(np.rint(out.astype(np.float32) + (noise * level)[..., None]), 0, 255).astype(np.uint8)
    out = np.where(edit[..., None], out, image)
    return out, disks

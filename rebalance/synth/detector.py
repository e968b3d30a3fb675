"""Analysis of a skin image: where the skin is, and where the acne lesions are.

- `skin_mask`: pixels whose smoothed chromaticity and brightness are close to the image's
  dominant (median) skin colour; the largest connected region, holes filled (so lesions and
  moles inside the skin stay skin). Hair and backdrops differ in brightness or colour and drop out.
- `detect`: blobs on a redness channel, log(R/G) minus its local background (a median over a
  17 px window), after a small grey closing that fills a pustule's pale head with its red rim.
  Local maxima above a threshold are lesions; candidates with a large brightness drop are moles
  (dark, not red), and freckles (brown) barely raise log(R/G), so neither is counted.

Used by the lesion-edit method (analyse the source, verify the edit) and measured against the
demo's true counts by the `detect` stage (metrics/detector.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max

from rebalance.core.images import load_array
from rebalance.dataset.grading import grade_of

VERSION = "detector-1"
BACKGROUND = 17  # px, median window for the local background of redness and brightness
THRESHOLD = 0.045  # redness excess (log R/G) at a lesion's peak
MOLE_DROP = -0.28  # log-brightness excess below which a red-ish peak is a mole, not a lesion
MIN_DISTANCE = 2  # px between two peaks
_SCALE = 100.0  # log values to uint8 levels for OpenCV's fast median (0.01 per level)


@dataclass(frozen=True)
class Analysis:
    skin: np.ndarray  # HxW bool
    peaks: np.ndarray  # Nx2 int (row, col) of detected lesions
    excess: np.ndarray  # HxW float32 redness above the local background (0 off skin)

    @property
    def count(self) -> int:
        return len(self.peaks)


def _median(channel: np.ndarray, size: int) -> np.ndarray:
    """Fast median filter of a float channel through a uint8 copy (0.01 steps around its median)."""
    lo = float(np.median(channel)) - 1.27
    q = np.clip(np.rint((channel - lo) * _SCALE), 0, 255).astype(np.uint8)
    return cv2.medianBlur(q, size).astype(np.float32) / _SCALE + lo


def _logs(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = image.astype(np.float32) + 1.0
    r, g, b = np.log(f[..., 0]), np.log(f[..., 1]), np.log(f[..., 2])
    return r - g, g - b, (r + g + b) / 3.0


def skin_mask(image: np.ndarray) -> np.ndarray:
    """Skin pixels: close to the dominant colour in chromaticity and brightness (see module doc)."""
    rg, gb, lum = _logs(image)
    feats = cv2.GaussianBlur(np.stack([rg, gb, lum], -1), (0, 0), 2.0)
    med = np.median(feats.reshape(-1, 3), axis=0)
    dist = np.abs(feats - med) / np.array([0.12, 0.12, 0.35], dtype=np.float32)
    mask = dist.max(axis=-1) < 1.0
    mask = ndi.binary_opening(mask, iterations=2)
    labels, n = ndi.label(mask)
    if n > 1:
        sizes = ndi.sum_labels(mask, labels, range(1, n + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    return ndi.binary_fill_holes(mask)


def analyse(image: np.ndarray, skin: np.ndarray | None = None) -> Analysis:
    """Skin mask and lesion peaks of an HxWx3 uint8 image (pass `skin` to reuse a known mask)."""
    rg, _, lum = _logs(image)
    if skin is None:
        skin = skin_mask(image)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    red = cv2.morphologyEx(rg, cv2.MORPH_CLOSE, kernel)
    excess = cv2.GaussianBlur(red - _median(red, BACKGROUND), (0, 0), 0.7)
    excess[~skin] = 0.0
    darker = cv2.GaussianBlur(lum - _median(lum, BACKGROUND), (0, 0), 1.0)
    peaks = peak_local_max(excess, min_distance=MIN_DISTANCE, threshold_abs=THRESHOLD, exclude_border=False)
    peaks = peaks[darker[peaks[:, 0], peaks[:, 1]] > MOLE_DROP]
    peaks = peaks[np.lexsort((peaks[:, 1], peaks[:, 0]))]
    return Analysis(skin=skin, peaks=peaks.astype(int), excess=excess)


def count(image: np.ndarray) -> int:
    """Number of acne lesions the detector finds in an HxWx3 uint8 image."""
    return analyse(image).count


def count_file(path: Path) -> int:
    """count() of an image file (one call per file, for a process pool)."""
    return count(load_array(path))


def measure(counts: list[int], true: list[int], labels: list[str], bins: dict) -> dict:
    """Count MAE/bias and grade agreement of detected vs true counts, overall and per class."""
    c, t = np.asarray(counts, dtype=float), np.asarray(true, dtype=float)
    labels_arr = np.asarray(labels)
    agree = np.array([grade_of(int(k), bins) == g for k, g in zip(counts, labels)], dtype=bool)

    def summary(m: np.ndarray) -> dict:
        n = int(m.sum())
        return {
            "images": n,
            "count_mae": round(float(np.abs(c - t)[m].mean()), 3) if n else None,
            "count_bias": round(float((c - t)[m].mean()), 3) if n else None,
            "grade_agreement": round(float(agree[m].mean()), 4) if n else None,
        }

    out = summary(np.ones(len(c), dtype=bool))
    out["per_class"] = {g: summary(labels_arr == g) for g in bins}
    return out

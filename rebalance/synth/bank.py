"""The lesion bank: real lesions cut from train images of the severe grades (never val/test).

Each entry is a small square patch centred on a lesion the detector found, with the radius of
the disk to blend and the grain (noise level) of the image it came from. Only isolated lesions
fully on skin are cut, so a patch carries one lesion and no hair, backdrop or neighbour.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from rebalance.core.images import load_array
from rebalance.synth import detector

MIN_RADIUS, MAX_RADIUS = 2.5, 7.0


@dataclass(frozen=True)
class Entry:
    patch: np.ndarray  # (2*half+1)^2 x 3 float32, linear RGB
    radius: float  # blend disk radius (px)
    half: int
    noise: float  # grain of the source image (robust std of its high-pass, grey levels)
    source: str  # raw image it was cut from


def grain(image: np.ndarray, skin: np.ndarray) -> float:
    """Robust noise level of an image on skin: 1.4826 * MAD of grey minus its 1 px blur."""
    grey = image.astype(np.float32).mean(axis=-1)
    hp = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    vals = hp[skin] if skin.any() else hp.ravel()
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))))


def blob_radius(excess: np.ndarray, y: int, x: int) -> float:
    """Blend radius for the lesion peaking at (y, x): 1.6x the radius of its half-height blob."""
    h, w = excess.shape
    y0, y1, x0, x1 = max(0, y - 8), min(h, y + 9), max(0, x - 8), min(w, x + 9)
    window = excess[y0:y1, x0:x1] >= 0.4 * excess[y, x]
    _, labels = cv2.connectedComponents(window.astype(np.uint8), connectivity=4)
    area = int((labels == labels[y - y0, x - x0]).sum())
    return float(np.clip(1.6 * np.sqrt(area / np.pi) + 1.0, MIN_RADIUS, MAX_RADIUS))


def cut(image: np.ndarray, source: str, limit: int, rng: np.random.Generator) -> list[Entry]:
    """Up to `limit` isolated on-skin lesions of one image, chosen at random."""
    found = detector.analyse(image)
    h, w = found.skin.shape
    noise = grain(image, found.skin)
    peaks = found.peaks
    entries = []
    for i in rng.permutation(len(peaks)):
        y, x = (int(v) for v in peaks[i])
        radius = blob_radius(found.excess, y, x)
        half = int(np.ceil(radius)) + 1
        if y - half < 0 or x - half < 0 or y + half >= h or x + half >= w:
            continue
        if not found.skin[y - half : y + half + 1, x - half : x + half + 1].all():
            continue
        d = np.hypot(*(peaks - [y, x]).T)
        if np.sum(d < radius + 2.0) > 1:  # another lesion inside the patch
            continue
        patch = image[y - half : y + half + 1, x - half : x + half + 1].astype(np.float32)
        entries.append(Entry(patch, radius, half, noise, source))
        if len(entries) >= limit:
            break
    return entries


def bank_images(train_real: pd.DataFrame, grades: list[str], n_images: int, seed: int) -> pd.DataFrame:
    """The train images the bank is cut from: a seeded sample of the given grades."""
    pool = train_real[(train_real.split == "train") & train_real.label.isin(grades)]
    pool = pool.sort_values("path").reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(pool))[:n_images]
    return pool.iloc[sorted(order)].reset_index(drop=True)


def fingerprint(images: pd.DataFrame) -> str:
    """Identity of a bank's inputs (paths and checksums), for cache keys."""
    text = "\n".join(f"{p} {s}" for p, s in zip(images.path, images.sha256))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(images: pd.DataFrame, raw_dir: Path, per_image: int, seed: int) -> list[Entry]:
    entries: list[Entry] = []
    for k, r in enumerate(images.itertuples()):
        rng = np.random.default_rng([seed, k])
        entries += cut(load_array(raw_dir / r.path), r.path, per_image, rng)
    return entries

"""Source choice for methods that start from a real image (lesion edits, diffusion local/img2img,
SD inpainting): cluster the candidate images, then spread the quota over the clusters.

As the synthetic-image augmentation study does per cluster: simple colour/texture features per
image, scikit-learn KMeans, and an order that interleaves clusters in proportion to their size
and visits every source once before any is used twice. Index i of a class's generated images
takes `order[i % len(order)]`, so growing the quota never changes the source of an existing
index.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from rebalance.core.images import load_array


def features(image: np.ndarray) -> np.ndarray:
    """Mean and spread of Lab, share of dark pixels (hair), high-pass energy (texture)."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    grey = image.astype(np.float32).mean(axis=-1)
    hp = grey - cv2.GaussianBlur(grey, (0, 0), 0.7)
    return np.concatenate([lab.mean(0), lab.std(0), [(lab[:, 0] < 60).mean(), hp.std()]])


def cluster(
    paths: list[str], raw_dir: Path, k: int, seed: int, memo: dict | None = None, *, fit: str
) -> np.ndarray:
    """KMeans cluster id per image (k clamped to the number of images), on features of each image
    brought to 32 x 32 by `fit` (dataset.fit); `memo` caches features."""
    if len(paths) == 0:
        return np.zeros(0, dtype=int)
    memo = {} if memo is None else memo
    for p in paths:
        if p not in memo:
            memo[p] = features(load_array(raw_dir / p, 32, fit))
    x = np.stack([memo[p] for p in paths])
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    k = max(1, min(k, len(paths)))
    return KMeans(n_clusters=k, n_init=2, random_state=seed).fit_predict(x).astype(int)


def spread_order(clusters: np.ndarray, seed: int, spread: str = "proportional") -> list[int]:
    """Row order: a seeded shuffle within each cluster, then clusters interleaved: `proportional`
    to their size (every source once before any twice), or `even` (round robin: each cluster gets
    an equal share, a small cluster's sources are reused more often)."""
    rng = np.random.default_rng(seed)
    keyed = []
    shuffled = {}
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        shuffled[int(c)] = members[rng.permutation(len(members))]
    if spread == "even":
        rounds = max(len(m) for m in shuffled.values())
        return [int(m[j % len(m)]) for j in range(rounds) for _, m in sorted(shuffled.items())]
    for c, members in shuffled.items():
        keyed += [((j + 0.5) / len(members), c, int(m)) for j, m in enumerate(members)]
    return [m for _, _, m in sorted(keyed)]


def plan(
    candidates: pd.DataFrame,
    raw_dir: Path,
    k: int,
    seed: int,
    memo: dict | None = None,
    spread: str = "proportional",
    *,
    fit: str,
) -> pd.DataFrame:
    """Candidates (sorted by path) in spread order, with a `cluster` column (clustered on images
    brought to a square by `fit`, dataset.fit)."""
    candidates = candidates.sort_values("path").reset_index(drop=True)
    ids = cluster(list(candidates.path), raw_dir, k, seed, memo, fit=fit)
    out = candidates.assign(cluster=ids)
    return out.iloc[spread_order(ids, seed, spread)].reset_index(drop=True)

"""Offline quality checks of synthetic images against the real train images.

Feature space. Inception (the usual FID space) needs downloaded weights, which this project never
fetches, and ImageNet features are a poor fit for skin patches anyway. We use instead, z-scored
per block on the real train images and concatenated:
- the penultimate (global-average-pooled) features of a small CNN (`stages.model.SmallCNN`)
  trained here on the real train split: it is the space in which the dataset's classes differ
  (lesion density and type), and the same network's predictions give the intended-class rate;
- per-channel colour mean and standard deviation: skin tone and lighting, which a class-trained
  CNN is free to ignore but a synthesis method must still reproduce.

Measures (per class): k-NN precision/recall (Kynkäänniemi et al. 2019: the share of synthetic
samples inside the union of real k-NN balls, and vice versa), the Fréchet distance between
Gaussian fits, a real-vs-synthetic AUC (cross-validated logistic regression on the features: 0.5
means indistinguishable), the memorisation check (nearest real train image by perceptual hash;
near-copies at a Hamming distance <= a threshold) and the intended-class rate.
"""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import torch
from PIL import Image
from scipy import linalg


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d, 0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row."""
    d = pairwise(x, x)
    np.fill_diagonal(d, np.inf)
    k = min(k, len(x) - 1)
    return np.sort(d, axis=1)[:, k - 1]


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls."""
    if len(real) < 2 or len(fake) < 2:
        return float("nan"), float("nan")
    d = pairwise(real, fake)  # real x fake
    precision = float((d <= knn_radii(real, k)[:, None]).any(0).mean())
    recall = float((d <= knn_radii(fake, k)[None, :]).any(1).mean())
    return precision, recall


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    offset = np.eye(len(mu1)) * eps
    covmean = np.real(linalg.sqrtm((s1 + offset) @ (s2 + offset)))
    return float(max(0.0, ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


def real_vs_synthetic_auc(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """Cross-validated AUC of a logistic regression telling real (0) from synthetic (1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if min(len(real), len(fake)) < 5:
        return float("nan")
    x = np.concatenate([real, fake])
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    clf = LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced")
    scores = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def phash(images: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes of N x H x W x 3 uint8 images, as N x 64 booleans."""
    return (
        np.stack([imagehash.phash(Image.fromarray(im)).hash.reshape(-1) for im in images])
        if len(images) > 0
        else (np.zeros((0, 64), bool))
    )


def phash_files(folder, names) -> np.ndarray:
    """Perceptual hashes of image files, each at its own size (mixed sizes are fine), N x 64 bools."""
    from stages.core.images import load_array

    return phash([load_array(Path(folder) / n) for n in names]) if len(names) else np.zeros((0, 64), bool)


def nearest_hash(
    fake_hashes: np.ndarray, real_hashes: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each synthetic image, the Hamming distance to and index of the nearest real image.

    `exclude` (N_fake x N_real booleans) marks pairs not to count, e.g. a local edit and its own
    source, which it resembles by design; a copy of any *other* train image is still found."""
    dist = (fake_hashes[:, None, :] != real_hashes[None, :, :]).sum(-1)
    if exclude is not None:
        dist = np.where(exclude, fake_hashes.shape[1] + 1, dist)
    return dist.min(1), dist.argmin(1)


def colour_stats(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1, 3).astype(np.float32) / 255.0
    return np.concatenate([x.mean(1), x.std(1)], axis=1)


@torch.no_grad()
def cnn_features(model, images_nchw_uint8: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Penultimate features of `stages.model.SmallCNN` (after global average pooling)."""
    from stages.learn.classifier import to_input

    model.eval()
    pool = model.head[:2]  # AdaptiveAvgPool2d + Flatten
    out = [
        pool(model.features(to_input(images_nchw_uint8[i : i + batch_size])))
        for i in range(0, len(images_nchw_uint8), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.head[-1].in_features), np.float32)


class FeatureSpace:
    """CNN features + colour statistics, each block z-scored on the real train images."""

    def __init__(self, model, real_train_uint8: np.ndarray):
        self.model = model
        blocks = self._blocks(real_train_uint8)
        self.stats = [(b.mean(0), b.std(0) + 1e-6) for b in blocks]

    def _blocks(self, images: np.ndarray) -> list[np.ndarray]:
        tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
        return [cnn_features(self.model, tensor), colour_stats(images)]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        blocks = self._blocks(images)
        return np.concatenate([(b - m) / s for b, (m, s) in zip(blocks, self.stats)], axis=1)

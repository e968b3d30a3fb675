"""Offline quality checks of synthetic images against the real train images.

Feature space. Inception (the usual FID space) needs downloaded weights, which this project never
fetches, and ImageNet features are a poor fit for skin patches anyway. We use instead, z-scored
per block on the real train images and concatenated:
- the penultimate (global-average-pooled) features of a small CNN (`rebalance.learn.backbones.SmallCNN`)
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
from torch.utils.data import Dataset

from rebalance.core.device import CPU, Runtime
from rebalance.dataset.shards import Packed
from rebalance.learn import data

CHUNK_CELLS = 2**22  # distances held at once (32 MiB of float64): memory stays flat in the data size


def _rows(n_other: int) -> int:
    """How many rows to compare at once against `n_other` rows, so that a chunk of the distance
    matrix holds at most CHUNK_CELLS values."""
    return max(1, CHUNK_CELLS // max(1, n_other))


def _nearest_sq(a: np.ndarray, b: np.ndarray, k: int, skip_self: bool = False) -> np.ndarray:
    """Squared distance of each row of `a` to its k-th nearest row of `b` (chunked over `a`)."""
    b_sq = (b * b).sum(1)
    out = np.empty(len(a))
    step = _rows(len(b))
    for i in range(0, len(a), step):
        part = a[i : i + step]
        d = (part * part).sum(1)[:, None] + b_sq[None, :] - 2 * part @ b.T
        if skip_self:
            d[np.arange(len(part)), np.arange(i, i + len(part))] = np.inf
        out[i : i + len(part)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return np.maximum(out, 0)


def _covered(points: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray) -> np.ndarray:
    """For each point, whether it lies in any ball (centre, radius)."""
    return _balls_holding(points, centres, radii_sq) > 0


def _balls_holding(points: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray) -> np.ndarray:
    """For each point, how many balls (centre, radius) hold it (chunked over the points)."""
    c_sq = (centres * centres).sum(1)
    out = np.empty(len(points), np.int64)
    step = _rows(len(centres))
    for i in range(0, len(points), step):
        part = points[i : i + step]
        d = (part * part).sum(1)[:, None] + c_sq[None, :] - 2 * part @ centres.T
        out[i : i + len(part)] = (d <= radii_sq[None, :]).sum(1)
    return out


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row."""
    k = min(k, len(x) - 1)
    return np.sqrt(_nearest_sq(x, x, k, skip_self=True))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls, computed in
    chunks of at most CHUNK_CELLS distances (never real x fake at once). Exact and brute force:
    O(real x fake) time on BLAS, memory flat in the data size."""
    if len(real) < 2 or len(fake) < 2:
        return float("nan"), float("nan")
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    precision = float(_covered(fake, real, knn_radii(real, k) ** 2).mean())
    recall = float(_covered(real, fake, knn_radii(fake, k) ** 2).mean())
    return precision, recall


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) with the k-NN balls of the real points: density, the
    mean number of real balls holding a synthetic point, divided by k (about 1 when synthetic points
    are spread as the real ones, above 1 where they crowd real modes); coverage, the share of real
    balls holding at least one synthetic point (robust to outliers, unlike recall)."""
    if len(real) < 2 or len(fake) < 1:
        return float("nan"), float("nan")
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    k = min(k, len(real) - 1)
    radii_sq = knn_radii(real, k) ** 2
    density = float(_balls_holding(fake, real, radii_sq).mean() / k)
    coverage = float((_nearest_sq(real, fake, 1) <= radii_sq).mean())
    return density, coverage


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    offset = np.eye(len(mu1)) * eps
    covmean = np.real(linalg.sqrtm((s1 + offset) @ (s2 + offset)))
    return float(max(0.0, ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


def linear_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    """A logistic regression of `labels` on standardised `features` (a linear probe); its `predict`
    gives a label for each row of other features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    return probe.fit(features, labels)


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


def phash_file(src: Path | Packed) -> np.ndarray:
    """The 64-bit perceptual hash of one image (a file, or a sample packed in a tar) at its own
    size, as 64 booleans."""
    from rebalance.core.images import open_rgb

    return imagehash.phash(open_rgb(src)).hash.reshape(-1)


def phash_files(sources: list[Path | Packed], desc: str, processes: int | None = None) -> np.ndarray:
    """Perceptual hashes of images (files or packed samples, rebalance.dataset.shards.source), each
    at its own size (mixed sizes are fine), N x 64 bools, on every core, one decoded at a time
    per process."""
    from rebalance.core.pool import pmap

    hashes = pmap(phash_file, sources, desc, processes)
    return np.stack(hashes) if hashes else np.zeros((0, 64), bool)


def pack(hashes: np.ndarray) -> np.ndarray:
    """N x 64 boolean hashes as N uint64 words."""
    return np.packbits(hashes.astype(np.uint8), axis=1).view(">u8").astype(np.uint64).reshape(-1)


def nearest_words(
    fake: np.ndarray, real: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each synthetic hash (uint64 words, `pack`), the Hamming distance to and index of the
    nearest real one. `exclude`: for each synthetic image the index of one real image not to count
    (a local edit's own source, which it resembles by design; a copy of any *other* train image is
    still found), -1 for none. Every pair compared with popcount, at most CHUNK_CELLS pairs at a
    time (no N x M x 64 array, memory flat in the data size; time O(N x M): see near_copies for
    the search that is not)."""
    dist, nearest = np.zeros(len(fake), int), np.zeros(len(fake), int)
    if len(fake) == 0 or len(real) == 0:
        return dist, nearest
    step = _rows(len(real))
    for i in range(0, len(fake), step):
        d = np.bitwise_count(fake[i : i + step, None] ^ real[None, :]).astype(np.int64)
        if exclude is not None:
            rows = np.arange(len(d))
            skip = exclude[i : i + step]
            d[rows[skip >= 0], skip[skip >= 0]] = 65  # farther than any two 64-bit hashes
        dist[i : i + len(d)], nearest[i : i + len(d)] = d.min(1), d.argmin(1)
    return dist, nearest


INDEXED_UP_TO_BITS = 12  # near_copies: wider searches cut the hash into chunks too short to index


def near_copies(
    fake: np.ndarray, real: np.ndarray, bits: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each synthetic hash (uint64 words), the Hamming distance to and index of the closest
    real hash at most `bits` bits away (-1, -1 when there is none); ties go to the lower index.

    Exhaustive, without comparing every pair: two hashes within `bits` bits agree exactly on at
    least one of `bits + 1` chunks of the 64 bits, so only hashes sharing a chunk value are
    compared (duplicates.near_pairs, the index stage count's leak check uses): about
    O((n + m) log(n + m)) for hashes that spread. Above INDEXED_UP_TO_BITS the chunks are too short
    to narrow anything and the chunked brute force (nearest_words) answers instead. `exclude`: for
    each synthetic image the index of one real image not to count (its own source), -1 for none."""
    from rebalance.dataset.duplicates import near_pairs

    dist, nearest = np.full(len(fake), -1), np.full(len(fake), -1)
    if len(fake) == 0 or len(real) == 0:
        return dist, nearest
    if bits > INDEXED_UP_TO_BITS:
        d, j = nearest_words(fake, real, exclude)
        hit = d <= bits
        return np.where(hit, d, -1), np.where(hit, j, -1)
    codes = np.r_[np.zeros(len(fake), np.int8), np.ones(len(real), np.int8)]
    pairs = np.array(near_pairs(np.concatenate([fake, real]), bits, codes), dtype=np.int64).reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1] - len(fake)  # pairs run (lower index, higher): fake first
    if exclude is not None:
        keep = exclude[i] != j
        i, j = i[keep], j[keep]
    d = np.bitwise_count(fake[i] ^ real[j]).astype(np.int64)
    order = np.lexsort((j, d, i))  # per fake image: closest first, then the lower real index
    first = order[np.r_[True, i[order][1:] != i[order][:-1]]] if len(order) else order
    dist[i[first]], nearest[i[first]] = d[first], j[first]
    return dist, nearest


def sample(n: int, cap: int, seed: int) -> np.ndarray:
    """Indices (sorted) of a seeded sample of at most `cap` of n rows: every row when n <= cap."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def colour_stats(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1, 3).astype(np.float32) / 255.0
    return np.concatenate([x.mean(1), x.std(1)], axis=1)


@torch.no_grad()
def describe(model, images: Dataset, runtime: Runtime = CPU, batch_size: int = 256):
    """One streamed pass over `images` (3 x H x W uint8 each, rebalance/learn/data.py): the small
    CNN's penultimate features (after global average pooling), colour mean/std and the class
    probabilities of every image, as numpy arrays."""
    from rebalance.learn.classifier import to_input

    model.to(runtime.device).eval()
    pool, classify = model.head[:2], model.head[2:]  # AdaptiveAvgPool2d + Flatten | Dropout + Linear
    feats, colours, preds = [], [], []
    for xb in data.loader(images, data.sequential(len(images), batch_size), runtime):
        with runtime.autocast():
            pooled = pool(model.features(to_input(xb.to(runtime.device, non_blocking=True))))
            logits = classify(pooled)
        feats.append(pooled.float().cpu().numpy())
        preds.append(logits.float().softmax(1).cpu().numpy())
        colours.append(colour_stats(xb.permute(0, 2, 3, 1).numpy()))
    if not feats:
        width, n = model.head[-1].in_features, model.head[-1].out_features
        return np.zeros((0, width), np.float32), np.zeros((0, 6), np.float32), np.zeros((0, n), np.float32)
    return np.concatenate(feats), np.concatenate(colours), np.concatenate(preds)


class FeatureSpace:
    """CNN features + colour statistics, each block z-scored on the real train images; images are
    streamed (a Dataset), so memory does not grow with the data."""

    def __init__(self, model, real_train: Dataset, runtime: Runtime = CPU):
        self.model, self.runtime = model, runtime
        cnn, colour, probs = describe(model, real_train, runtime)
        self.train_predictions = probs.argmax(1)
        self.stats = [(b.mean(0), b.std(0) + 1e-6) for b in (cnn, colour)]
        self.train = self._scaled(cnn, colour)

    @classmethod
    def restore(cls, model, stats: list, train: np.ndarray, runtime: Runtime = CPU) -> FeatureSpace:
        """A saved space (its scaling and real train features), without decoding real images again."""
        space = cls.__new__(cls)
        space.model, space.runtime, space.stats, space.train = model, runtime, stats, train
        return space

    def _scaled(self, cnn: np.ndarray, colour: np.ndarray) -> np.ndarray:
        blocks = zip((cnn, colour), self.stats)
        return np.concatenate([(b - m) / s for b, (m, s) in blocks], axis=1)

    def __call__(self, images: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(features, predicted class) of every image."""
        features, probs = self.judge(images)
        return features, probs.argmax(1)

    def judge(self, images: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(features, class probabilities) of every image."""
        cnn, colour, probs = describe(self.model, images, self.runtime)
        return self._scaled(cnn, colour), probs

"""The judge: a small CNN trained on the real train images only, that scores every synthetic image.

Stage `judge` trains it (the same classifier stage `assess` measures with) and saves it with what
it needs to score an image without seeing real images again: its feature space's scaling (CNN
features + colour statistics, z-scored on real train, rebalance/synth/quality.py), the real train
features and labels, and per class the reference of the real val images. Per image it gives:

- `p`: the judge's probability of the image's intended class, and `p_pct`, the percentile of that
  probability among the class's real val images (10: lower than 90% of them);
- `distance`: the mean distance to the class's K nearest real train images in the feature space,
  and `distance_pct`, its percentile among the class's real val images' distances (95: farther
  than 95% of the real images the judge never trained on).

A class without real val images has no reference: its percentiles are None.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rebalance.core import atomic
from rebalance.core.device import CPU, Runtime
from rebalance.core.errors import RebalanceError
from rebalance.synth import quality

K = 5  # neighbours of the feature distance
FILE = "judge.pt"


def percentile(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each value, the share (in %) of `reference` values below it (nan without a reference)."""
    if len(reference) == 0:
        return np.full(len(values), np.nan)
    ref = np.sort(reference)
    return 100.0 * np.searchsorted(ref, values, side="left") / len(ref)


def mean_knn_distance(points: np.ndarray, of: np.ndarray, k: int = K) -> np.ndarray:
    """Each point's mean Euclidean distance to its k nearest rows of `of` (a point's own row, when
    `points` is `of`, is not left out: call it on other points)."""
    k = max(1, min(k, len(of)))
    out = np.empty(len(points))
    step = max(1, quality.CHUNK_CELLS // max(1, len(of)))
    of_sq = (of * of).sum(1)
    for i in range(0, len(points), step):
        part = points[i : i + step]
        d = np.maximum((part * part).sum(1)[:, None] + of_sq[None, :] - 2 * part @ of.T, 0)
        out[i : i + len(part)] = np.sqrt(np.partition(d, k - 1, axis=1)[:, :k]).mean(1)
    return out


class Judge:
    def __init__(self, space: quality.FeatureSpace, train_labels: np.ndarray, classes: list[str]):
        self.space, self.train_labels, self.classes = space, np.asarray(train_labels), classes
        self.reference: dict[str, dict[str, np.ndarray]] = {}

    def raw_scores(self, images: Dataset, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability of the intended class, mean K-NN distance to that class's real train images)."""
        return self._raw_scores(*self.space.judge(images), np.asarray(labels))

    def _raw_scores(
        self, features: np.ndarray, probs: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        p = probs[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
        distance = np.full(len(labels), np.nan)
        for c in np.unique(labels):
            mine = labels == c
            distance[mine] = mean_knn_distance(features[mine], self.space.train[self.train_labels == c])
        return p, distance

    def calibrate(self, val_images: Dataset, val_labels: np.ndarray) -> dict[str, dict]:
        """Keep the real val images' scores as each class's reference; per class, the val accuracy
        (the reference row) and how many images it rests on."""
        features, probs = self.space.judge(val_images)  # each val image scored once
        p, distance = self._raw_scores(features, probs, np.asarray(val_labels))
        right = probs.argmax(1) == np.asarray(val_labels)
        report = {}
        for i, c in enumerate(self.classes):
            mine = np.asarray(val_labels) == i
            self.reference[c] = {"p": p[mine], "distance": distance[mine]}
            report[c] = {"n": int(mine.sum()), "accuracy": float(right[mine].mean()) if mine.any() else None}
        return report

    def score(self, images: Dataset, labels: np.ndarray) -> list[dict[str, float | None]]:
        """Per image: p, p_pct, distance, distance_pct (the module's docstring)."""
        p, distance = self.raw_scores(images, labels)
        out = [{} for _ in range(len(p))]
        labels = np.asarray(labels)
        for i, c in enumerate(self.classes):
            mine = np.flatnonzero(labels == i)
            ref = self.reference.get(c, {"p": np.zeros(0), "distance": np.zeros(0)})
            p_pct, d_pct = percentile(ref["p"], p[mine]), percentile(ref["distance"], distance[mine])
            for j, a, b in zip(mine, p_pct, d_pct):
                out[j] = {
                    "p": round(float(p[j]), 4),
                    "p_pct": None if np.isnan(a) else round(float(a), 1),
                    "distance": round(float(distance[j]), 4),
                    "distance_pct": None if np.isnan(b) else round(float(b), 1),
                }
        return out

    def save(self, folder: Path, **meta) -> None:
        net = self.space.model
        state = {
            "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
            "width": net.features[0].out_channels,
            "classes": self.classes,
            "stats": [(m.tolist(), s.tolist()) for m, s in self.space.stats],
            "train": torch.from_numpy(self.space.train.astype(np.float32)),
            "train_labels": torch.from_numpy(self.train_labels.astype(np.int64)),
            "reference": {
                c: {k: torch.from_numpy(v.astype(np.float64)) for k, v in r.items()}
                for c, r in self.reference.items()
            },  # fmt: skip
            "meta": meta,
        }
        with atomic.output_file(folder / FILE) as f:
            torch.save(state, f)

    @classmethod
    def load(cls, folder: Path, runtime: Runtime = CPU) -> Judge:
        from rebalance.learn.backbones import SmallCNN

        if not (folder / FILE).is_file():
            raise RebalanceError(
                f"{(folder / FILE).as_posix()} missing: run stage judge first (`dvc repro judge`)"
            )
        state = torch.load(folder / FILE, map_location="cpu", weights_only=True)
        net = SmallCNN(len(state["classes"]), state["width"])
        net.load_state_dict(state["state_dict"])
        stats = [(np.array(m, np.float32), np.array(s, np.float32)) for m, s in state["stats"]]
        space = quality.FeatureSpace.restore(net.eval(), stats, state["train"].numpy(), runtime)
        judge = cls(space, state["train_labels"].numpy(), state["classes"])
        judge.reference = {c: {k: v.numpy() for k, v in r.items()} for c, r in state["reference"].items()}
        judge.meta = state["meta"]
        return judge

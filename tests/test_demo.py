"""The demo dataset: ACNE04's shape, lesion counts in the Hayashi bins, deterministic, varied."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rebalance.core.hashing import sha256_file
from rebalance.core.images import load_array
from rebalance.dataset import demo, grading

CLASSES = ["level0", "level1", "level2", "level3"]
BINS = {"level0": (0, 5), "level1": (6, 20), "level2": (21, 50), "level3": (51, np.inf)}


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rows = demo.write(out, CLASSES, BINS, scale=0.03, size=128, seed=0)
    return out, pd.DataFrame(rows)


def test_class_sizes_follow_acne04():
    assert demo.class_sizes(CLASSES, 1.0) == dict(zip(CLASSES, (513, 633, 182, 129)))
    assert sum(demo.class_sizes(CLASSES, 0.5).values()) < 1457


def test_lesion_counts_fall_in_their_grade_bins(small_demo):
    _, labels = small_demo
    for r in labels.itertuples():
        assert grading.grade_of(r.lesions, BINS) == r.label, (r.path, r.lesions)
        assert r.papules + r.pustules + r.nodules == r.lesions


def test_images_are_128px_rgb_and_varied(small_demo):
    out, labels = small_demo
    arrays = [load_array(out / p) for p in labels.path]
    assert all(a.shape == (128, 128, 3) for a in arrays)
    brightness = [a.mean() for a in arrays]
    assert max(brightness) - min(brightness) > 60  # light to dark skin
    assert labels.skin_tone.min() < 0.25 and labels.skin_tone.max() > 0.6
    assert labels.freckles.sum() > 0 and labels.moles.sum() > 0  # look-alikes present


def test_more_lesions_mean_more_red_pixels():
    """The label is visible: lesions add redness that a classifier can learn."""

    def redness(n: int) -> float:
        values = []
        for k in range(6):
            img = demo.render(np.random.default_rng([7, k]), n, 0.5)[0].astype(float)
            values.append(
                ((img[..., 0] - img[..., 1]) > 1.25 * np.median(img[..., 0] - img[..., 1]) + 20).mean()
            )
        return float(np.mean(values))

    assert redness(2) < redness(30) < redness(70)


def test_generation_is_deterministic(small_demo, tmp_path):
    out, labels = small_demo
    again = demo.write(tmp_path, CLASSES, BINS, scale=0.03, size=128, seed=0)
    assert [r["lesions"] for r in again] == list(labels.lesions)
    for p in labels.path[:5]:
        assert sha256_file(out / p) == sha256_file(tmp_path / p)

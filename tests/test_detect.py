"""The lesion detector against the demo's true counts, on a small rendered sample."""

from __future__ import annotations

import numpy as np
import pytest

from rebalance.dataset import demo, demo_render as lesions
from rebalance.dataset.grading import grade_of
from rebalance.synth import detector

BINS = {"level0": (0, 5), "level1": (6, 20), "level2": (21, 50), "level3": (51, float("inf"))}


def demo_sample(per_grade: int = 12):
    out = []
    for g, (label, (lo, hi)) in enumerate(BINS.items()):
        hi = lo + demo.OPEN_BIN_SPAN - 1 if hi == float("inf") else hi
        for i in range(per_grade):
            rng = np.random.default_rng([123, g, i])
            n = int(rng.integers(lo, hi + 1))
            image, attrs = demo.render(rng, n, g / 3)
            out.append((image, attrs["lesions"], label))
    return out


def test_detector_grade_agreement_on_demo_sample():
    sample = demo_sample()
    counts = [detector.count(im) for im, _, _ in sample]
    m = detector.measure(counts, [t for _, t, _ in sample], [g for _, _, g in sample], BINS)
    assert m["grade_agreement"] >= 0.85, m
    assert m["count_mae"] < 4.0, m


def test_moles_and_freckles_are_not_lesions():
    rng = np.random.default_rng(5)
    img, skin, _, light = demo.skin_patch(rng, 128)
    spots = lesions.place(rng, skin, ["mole"] * 3 + ["freckle"] * 12, [])
    for s in spots:
        lesions.draw(img, s, light)
    assert detector.count(np.clip(np.rint(img), 0, 255).astype(np.uint8)) <= 1


def test_counts_added_lesions():
    rng = np.random.default_rng(9)
    img, skin, _, light = demo.skin_patch(rng, 128)
    spots = lesions.place(rng, skin, ["papule"] * 10 + ["nodule"] * 3, [], margin=8)
    for s in spots:
        lesions.draw(img, s, light)
    found = detector.count(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    assert abs(found - len(spots)) <= 2


def test_measure_reports_per_class():
    m = detector.measure([3, 30, 7], [2, 30, 12], ["level0", "level2", "level1"], BINS)
    assert m["images"] == 3 and m["count_mae"] == pytest.approx(2.0)
    assert m["grade_agreement"] == pytest.approx(1.0)
    assert m["per_class"]["level3"]["images"] == 0
    assert grade_of(7, BINS) == "level1"

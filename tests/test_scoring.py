"""Metrics agree with scikit-learn; bootstrap intervals bracket the point estimate."""

from __future__ import annotations

import numpy as np
import pytest

from stages.learn import metrics as scoring


@pytest.mark.parametrize("seed", range(5))
def test_fast_headline_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    if seed == 4:
        pred[pred == 3] = 2  # a class never predicted
    k = 4
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    fast = scoring._headline_from_confusion(cm)
    slow = scoring._headline(y, pred)
    assert fast == pytest.approx(slow)


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    ci = scoring.bootstrap(y, pred, n=300)
    point = scoring._headline(y, pred)
    for name, (lo, hi) in ci.items():
        assert lo < point[name] < hi and hi - lo < 0.2


def test_evaluate_reports_ordinal_errors_and_per_class_auc():
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 1, 2, 1, 0]] * 0.8 + 0.2 / 3
    out = scoring.evaluate(y, proba, ["a", "b", "c"], ordinal=True)
    assert out["accuracy"] == pytest.approx(5 / 6)
    assert out["grade_mae"] == pytest.approx(1 / 6)
    assert set(out["per_class"]["c"]) >= {"precision", "recall", "f1", "auroc", "auprc"}

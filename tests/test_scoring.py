"""One model's test-set metrics agree with scikit-learn (the evidence between variants:
tests/test_bootstrap.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import REPO
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from rebalance.learn import evidence, metrics as scoring, report

CLASSES = ["a", "b", "c", "d"]


@pytest.mark.parametrize("seed", range(5))
def test_fast_headline_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    if seed == 4:
        pred[pred == 3] = 2  # a class never predicted
    k = 4
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    fast = evidence.confusion_metrics(cm[None], CLASSES)
    assert fast["accuracy"][0] == pytest.approx(accuracy_score(y, pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an F1 of a class never predicted: 0, as here
        assert fast["balanced_accuracy"][0] == pytest.approx(balanced_accuracy_score(y, pred))
        assert fast["macro_f1"][0] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))


def test_evaluate_reports_ordinal_errors_and_per_class_auc():
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 1, 2, 1, 0]] * 0.8 + 0.2 / 3
    out = scoring.evaluate(y, proba, ["a", "b", "c"], ordinal=True)
    assert out["accuracy"] == pytest.approx(5 / 6)
    assert out["grade_mae"] == pytest.approx(1 / 6)
    assert set(out["per_class"]["c"]) >= {"precision", "recall", "f1", "auroc", "auprc"}


def test_mean_over_seeds_averages_nested_metrics_and_keeps_constants():
    per_seed = [
        {"accuracy": 0.5, "macro_auroc": None, "per_class": {"a": {"recall": 0.2, "support": 5}}},
        {"accuracy": 0.7, "macro_auroc": None, "per_class": {"a": {"recall": 0.4, "support": 5}}},
    ]
    out = report.mean_over_seeds(per_seed)
    assert out["accuracy"] == pytest.approx(0.6) and out["macro_auroc"] is None
    assert out["per_class"]["a"]["recall"] == pytest.approx(0.3)
    assert out["per_class"]["a"]["support"] == 5 and isinstance(out["per_class"]["a"]["support"], int)


def test_training_metrics_equal_sklearns_without_importing_it():
    """train's balanced accuracy (which picks the checkpoint) and macro-F1 equal sklearn's exactly,
    also when a split lacks a class or a class is only predicted; and a training stage's imports
    leave sklearn out (2-3 s per train@variant process)."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    for trial in range(200):
        n, k = int(rng.integers(1, 40)), int(rng.integers(2, 6))
        y, pred = rng.integers(0, k, n), rng.integers(0, k + trial % 2, n)  # sometimes an unseen class
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert scoring.balanced_accuracy(y, pred) == balanced_accuracy_score(y, pred)
        assert scoring.macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
    code = "import sys, stages.train; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"

"""Metrics agree with scikit-learn; the class-stratified bootstrap (intervals and paired
differences) equals a brute-force loop, keeps class counts fixed, and separates real differences
from noise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import REPO
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from rebalance.learn import metrics as scoring, report

CLASSES = ["a", "b", "c", "d"]
MINORITY = ["c", "d"]


@pytest.mark.parametrize("seed", range(5))
def test_fast_headline_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    if seed == 4:
        pred[pred == 3] = 2  # a class never predicted
    k = 4
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    fast = scoring.confusion_metrics(cm[None], CLASSES, [])
    assert fast["accuracy"][0] == pytest.approx(accuracy_score(y, pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an F1 of a class never predicted: 0, as here
        assert fast["balanced_accuracy"][0] == pytest.approx(balanced_accuracy_score(y, pred))
        assert fast["macro_f1"][0] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))


def bootstrap(y, pred, classes, minority, n, seed=scoring.BOOTSTRAP_SEED) -> dict[str, list[float]]:
    """One model's 95% intervals, as stage evaluate computes them."""
    samples = scoring.bootstrap_samples(y, pred, classes, minority, n, seed)
    return {name: scoring.interval(v) for name, v in samples.items()}


def paired_bootstrap(y, pred, base, classes, minority, n, seed=scoring.BOOTSTRAP_SEED) -> dict[str, dict]:
    """One model against a baseline on the same resamples, as stage evaluate computes it."""
    return scoring.paired(
        scoring.bootstrap_samples(y, pred, classes, minority, n, seed),
        scoring.bootstrap_samples(y, base, classes, minority, n, seed),
        scoring.point_metrics(y, pred, classes, minority),
        scoring.point_metrics(y, base, classes, minority),
    )


def noisy(y: np.ndarray, correct: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(y)) < correct, y, rng.integers(0, 4, len(y)))


def imbalanced_labels(n: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(4, n, p=[0.45, 0.35, 0.12, 0.08])


def sklearn_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    out = {
        f"recall_{c}": recall_score(y, pred, labels=[CLASSES.index(c)], average=None, zero_division=0)[0]
        for c in MINORITY
    }
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore")
        out["balanced_accuracy"] = balanced_accuracy_score(y, pred)
    out["macro_f1"] = f1_score(y, pred, average="macro", zero_division=0)
    out["accuracy"] = accuracy_score(y, pred)
    return out


def brute_force_paired(y, pred, base, n, seed):
    """The reference: one resample at a time, scikit-learn metrics, plain percentile and p."""
    diffs = {name: [] for name in scoring.metric_names(MINORITY)}
    for block in scoring.stratified_resamples(y, n, seed):
        for idx in block:
            a, b = sklearn_metrics(y[idx], pred[idx]), sklearn_metrics(y[idx], base[idx])
            for name in diffs:
                diffs[name].append(a[name] - b[name])
    full_a, full_b = sklearn_metrics(y, pred), sklearn_metrics(y, base)
    out = {}
    for name, d in diffs.items():
        d = np.array(d)
        below = (1 + sum(v <= 0 for v in d)) / (n + 1)
        above = (1 + sum(v >= 0 for v in d)) / (n + 1)
        out[name] = {
            "delta": full_a[name] - full_b[name],
            "ci95": [np.percentile(d, 2.5), np.percentile(d, 97.5)],
            "p": min(1.0, 2 * min(below, above)),
        }
    return out


def test_paired_bootstrap_equals_a_brute_force_loop():
    y = imbalanced_labels(90)
    pred, base = noisy(y, 0.75, 1), noisy(y, 0.6, 2)
    fast = paired_bootstrap(y, pred, base, CLASSES, MINORITY, n=150, seed=7)
    slow = brute_force_paired(y, pred, base, n=150, seed=7)
    assert list(fast) == ["recall_c", "recall_d", "balanced_accuracy", "macro_f1", "accuracy"]
    for name, ref in slow.items():
        assert fast[name]["delta"] == pytest.approx(ref["delta"], abs=1e-12)
        assert fast[name]["ci95"] == pytest.approx(ref["ci95"], abs=1e-12)
        assert fast[name]["p"] == pytest.approx(ref["p"], abs=1e-12)


def test_bootstrap_samples_match_sklearn_on_every_resample():
    y = imbalanced_labels(60, seed=3)
    pred = noisy(y, 0.7, 4)
    pred[pred == 3] = 2  # a class never predicted: sklearn's conventions must hold
    samples = scoring.bootstrap_samples(y, pred, CLASSES, MINORITY, n=40, seed=1)
    resamples = np.concatenate(list(scoring.stratified_resamples(y, 40, seed=1)))
    for i, idx in enumerate(resamples):
        ref = sklearn_metrics(y[idx], pred[idx])
        for name, value in ref.items():
            assert samples[name][i] == pytest.approx(value, abs=1e-12)


def test_identical_predictions_give_zero_difference_and_p_one():
    y = imbalanced_labels()
    pred = noisy(y, 0.7, 5)
    out = paired_bootstrap(y, pred, pred.copy(), CLASSES, MINORITY, n=200, seed=0)
    for d in out.values():
        assert d["delta"] == 0 and d["ci95"] == [0.0, 0.0] and d["p"] == 1.0


def test_a_clearly_better_model_gets_an_interval_above_zero_and_a_small_p():
    y = imbalanced_labels(300, seed=1)
    good, bad = noisy(y, 0.95, 6), noisy(y, 0.4, 7)
    out = paired_bootstrap(y, good, bad, CLASSES, MINORITY, n=500, seed=0)
    for name in ("balanced_accuracy", "macro_f1", "recall_c", "recall_d"):
        assert out[name]["delta"] > 0.2 and out[name]["ci95"][0] > 0 and out[name]["p"] < 0.01
    assert out["balanced_accuracy"]["p"] == pytest.approx(2 / 501)  # no resample at or below 0
    reverse = paired_bootstrap(y, bad, good, CLASSES, MINORITY, n=500, seed=0)
    assert reverse["balanced_accuracy"]["ci95"][1] < 0 and reverse["balanced_accuracy"]["p"] < 0.01


def test_noise_alone_gives_a_large_p():
    y = imbalanced_labels(200, seed=2)
    a, b = noisy(y, 0.7, 8), noisy(y, 0.7, 9)  # same skill, different mistakes
    out = paired_bootstrap(y, a, b, CLASSES, MINORITY, n=500, seed=0)
    lo, hi = out["balanced_accuracy"]["ci95"]
    assert lo < 0 < hi and out["balanced_accuracy"]["p"] > 0.05


def test_stratification_keeps_class_counts_fixed_in_every_resample():
    y = imbalanced_labels(77, seed=4)
    blocks = list(scoring.stratified_resamples(y, 300, seed=2))
    resamples = np.concatenate(blocks)
    assert resamples.shape == (300, len(y))
    assert (y[resamples] == y).all()  # every position keeps its class, so every count is fixed
    for idx in resamples[:50]:
        assert (np.bincount(y[idx], minlength=4) == np.bincount(y, minlength=4)).all()
    assert len({tuple(r) for r in resamples}) == 300  # they do resample
    for c in range(4):  # within a class, drawn from all of its members
        assert set(resamples[:, y == c].ravel()) == set(np.flatnonzero(y == c))
    again = np.concatenate(list(scoring.stratified_resamples(y, 300, seed=2)))
    assert (again == resamples).all()


def test_stratified_resamples_come_in_blocks_on_large_test_sets():
    y = np.arange(30_000) % 3
    blocks = list(scoring.stratified_resamples(y, 70, seed=0))
    assert len(blocks) > 1 and sum(len(b) for b in blocks) == 70


def test_bootstrap_interval_brackets_the_estimate():
    y = imbalanced_labels(200)
    pred = noisy(y, 0.7, 0)
    ci = bootstrap(y, pred, CLASSES, MINORITY, n=300)
    point = scoring.point_metrics(y, pred, CLASSES, MINORITY)
    assert set(ci) == set(point) == set(scoring.metric_names(MINORITY))
    for name in ("balanced_accuracy", "macro_f1", "accuracy"):
        lo, hi = ci[name]
        assert lo < point[name] < hi and hi - lo < 0.25


def test_p_value_formula():
    assert scoring.p_value(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 * 1 / 4)
    assert scoring.p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(2 * 2 / 5)
    assert scoring.p_value(np.zeros(9)) == 1.0


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


def test_summary_markdown_leads_with_the_answer_then_the_table():
    y = imbalanced_labels(100)
    preds = {"real": noisy(y, 0.5, 1), "real_oversampled": noisy(y, 0.6, 2), "balanced": noisy(y, 0.8, 3)}
    samples = {v: scoring.bootstrap_samples(y, p, CLASSES, MINORITY, 100) for v, p in preds.items()}
    points = {v: scoring.point_metrics(y, p, CLASSES, MINORITY) for v, p in preds.items()}
    stats = {"mean": 0.5, "std": 0.1}
    variants = {
        v: {
            "mean_std": {m: stats for m in ("recall_c", "recall_d", "balanced_accuracy", "macro_f1")},
            "pooled": points[v],
            "ci95": {m: scoring.interval(s) for m, s in samples[v].items()},
            "paired": {
                b: scoring.paired(samples[v], samples[b], points[v], points[b])
                for b in ("real_oversampled", "real")
                if b != v
            },
        }
        for v in preds
    }
    summary = {"headline": "balanced", "minority": MINORITY, "n_test": 100, "seeds": [0, 1],
               "bootstrap": {"resamples": 100}, "variants": variants}  # fmt: skip
    lines = report.markdown(summary).splitlines()
    assert lines[0].startswith("`balanced` vs `real_oversampled`")
    d = variants["balanced"]["paired"]["real_oversampled"]["recall_d"]
    assert lines[3] == (
        f"- balanced vs real_oversampled: recall_d {d['delta']:+.3f} "
        f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}], p = {d['p']:.2g}"
    )
    assert lines[4].startswith("- balanced vs real_oversampled: balanced_accuracy ")
    assert lines[6].startswith("`balanced` vs `real`")
    table = lines.index(next(line for line in lines if line.startswith("| variant |")))
    assert any("pooled over seeds" in line for line in lines[:table])
    assert lines[table].split("|")[2].strip() == "recall_c"


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


def test_holm_adjusts_every_paired_difference_as_by_hand():
    ps = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    variants = {
        "balanced": {"paired": {"real": {m: {"p": ps[m]} for m in ("a", "b")}}},
        "other": {"paired": {"real": {m: {"p": ps[m]} for m in ("c", "d")}}},
    }
    assert report.holm(variants) == 4
    # Holm by hand: sorted p 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, made monotone, capped at 1
    by_hand = {"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5}
    got = {
        m: d["p_holm"] for v in variants.values() for diffs in v["paired"].values() for m, d in diffs.items()
    }
    assert got == pytest.approx(by_hand)


def test_a_class_without_test_images_is_not_measured_not_a_null_effect():
    d = {"delta": 0.0, "ci95": [0.0, 0.0], "p": 1.0, "p_holm": 1.0}
    summary = {
        "headline": "balanced", "minority": ["rare", "small"], "not_measured": ["rare"], "seeds": [0, 1],
        "n_test": 20, "bootstrap": {"resamples": 10}, "holm_family": 3, "generators": {},
        "variants": {
            "balanced": {
                "mean_std": {"recall_small": {"mean": 0.5, "std": 0.1},
                             "balanced_accuracy": {"mean": 0.6, "std": 0.0}},
                "pooled": {"recall_small": 0.5, "balanced_accuracy": 0.6},
                "ci95": {"recall_small": [0.2, 0.8], "balanced_accuracy": [0.5, 0.7]},
                "paired": {"real": {"recall_small": d, "balanced_accuracy": d, "macro_f1": d}},
            },
        },
    }  # fmt: skip
    md = report.markdown(summary)
    assert "recall_rare" not in md and "Not measured: rare" in md
    assert "(Holm 1)" in md and "family of all 3 differences" in md

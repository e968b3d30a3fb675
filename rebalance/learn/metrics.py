"""Test-set metrics: the CONTRACT's eval.json fields, ordinal-grade errors, curves, and the
class-stratified bootstrap (intervals of one variant, paired differences between two)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from types import ModuleType

import numpy as np

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")


@functools.cache
def _sk() -> ModuleType:
    """sklearn.metrics, imported on first use: 2-3 s of imports (scipy.stats) that the training
    stages, which need only the two functions below, no longer pay."""
    import sklearn.metrics

    return sklearn.metrics


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in `y` (sklearn's balanced_accuracy_score, the same
    operations in the same order). A class absent from a small val or test split predicted anyway
    is no error (sklearn warns)."""
    y, pred = np.asarray(y), np.asarray(pred)
    present = np.unique(y)
    recalls = np.array([np.sum((y == c) & (pred == c)) / np.sum(y == c) for c in present])
    return float(np.mean(recalls))


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean F1 over the classes in `y` or `pred` (sklearn's f1_score(average="macro"))."""
    y, pred = np.asarray(y), np.asarray(pred)
    scores = []
    for c in np.unique(np.concatenate([y, pred])):
        tp, miss = np.sum((y == c) & (pred == c)), np.sum((y == c) != (pred == c))  # miss: fp + fn
        scores.append(2 * tp / (2 * tp + miss))
    return float(np.mean(scores))


def _headline(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(_sk().accuracy_score(y, pred)),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "macro_f1": macro_f1(y, pred),
    }


def evaluate(y: np.ndarray, proba: np.ndarray, classes: list[str], ordinal: bool) -> dict:
    """All metrics of one model on one test set (y: true class indices, proba: N x C)."""
    pred = proba.argmax(1)
    labels = list(range(len(classes)))
    p, r, f, support = _sk().precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out = _headline(y, pred)
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    onehot = np.eye(len(classes))[y]
    for i, c in enumerate(classes):
        if 0 < onehot[:, i].sum() < len(y):
            out["per_class"][c]["auroc"] = float(_sk().roc_auc_score(onehot[:, i], proba[:, i]))
            out["per_class"][c]["auprc"] = float(_sk().average_precision_score(onehot[:, i], proba[:, i]))
    aurocs = [v["auroc"] for v in out["per_class"].values() if "auroc" in v]
    auprcs = [v["auprc"] for v in out["per_class"].values() if "auprc" in v]
    out["macro_auroc"] = float(np.mean(aurocs)) if aurocs else None
    out["macro_auprc"] = float(np.mean(auprcs)) if auprcs else None
    if ordinal:
        out["grade_mae"] = float(np.abs(pred - y).mean())
        out["qwk"] = float(_sk().cohen_kappa_score(y, pred, weights="quadratic", labels=labels))
    return out


# ---- the class-stratified bootstrap --------------------------------------------------------------
#
# A resample draws, within each true class, as many test images as the class has, with replacement:
# class counts (and so what balanced accuracy averages over) stay those of the test set, and only
# which images of a class are drawn varies. A paired comparison scores two models' predictions on
# the same resamples (same seed, same test labels), so the difference's spread excludes the shared
# test-set luck. Intervals are percentile intervals; the two-sided p-value of a difference d over B
# resamples is p = min(1, 2 * min((1 + #{d <= 0}) / (B + 1), (1 + #{d >= 0}) / (B + 1))): about the
# smallest alpha at which the (1 - alpha) percentile interval excludes 0, with the +1 correction
# that keeps p > 0 and gives identical predictions p = 1.

BOOTSTRAP_SEED = 0


def metric_names(minority: list[str]) -> list[str]:
    """What the bootstrap measures: minority-class recall first, then the headline metrics."""
    return [*(f"recall_{c}" for c in minority), "balanced_accuracy", "macro_f1", "accuracy"]


def confusion_metrics(cms: np.ndarray, classes: list[str], minority: list[str]) -> dict[str, np.ndarray]:
    """`metric_names` of a stack of confusion matrices (B x C x C, rows: true), one value per matrix,
    with scikit-learn's conventions: balanced accuracy averages recall over classes present in the
    truth, macro-F1 averages F1 over classes present in truth or prediction, 0 where undefined."""
    tp = np.diagonal(cms, axis1=1, axis2=2).astype(float)
    true_n, pred_n = cms.sum(2), cms.sum(1)
    present, seen = true_n > 0, (true_n + pred_n) > 0
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=present)
    f1 = np.divide(2 * tp, true_n + pred_n, out=np.zeros_like(tp), where=seen)
    out = {f"recall_{c}": recall[:, classes.index(c)] for c in minority}
    out["balanced_accuracy"] = (recall * present).sum(1) / present.sum(1)
    out["macro_f1"] = (f1 * seen).sum(1) / seen.sum(1)
    out["accuracy"] = tp.sum(1) / cms.sum((1, 2))
    return out


def stratified_resamples(y: np.ndarray, n: int, seed: int = BOOTSTRAP_SEED) -> Iterator[np.ndarray]:
    """`n` class-stratified resamples of the test indices, in blocks (rows: resamples, columns: the
    N test positions). The positions of a true class hold indices of that class drawn uniformly
    with replacement, so `y[block] == y` row by row. Deterministic for (y, n, seed)."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    block = max(1, 1_000_000 // max(1, len(y)))  # bounds memory on large test sets
    for start in range(0, n, block):
        b = min(block, n - start)
        idx = np.empty((b, len(y)), dtype=np.intp)
        for m in members:
            idx[:, m] = m[rng.integers(0, len(m), size=(b, len(m)))]
        yield idx


def bootstrap_samples(
    y: np.ndarray,
    pred: np.ndarray,
    classes: list[str],
    minority: list[str],
    n: int,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, np.ndarray]:
    """Each of `metric_names` on each of the `n` stratified resamples (one array of n values each).
    Vectorised: per resample, the confusion matrix is a bincount of the resampled (true, predicted)
    cells. Two calls with the same y, n and seed use the same resamples (the paired bootstrap)."""
    k = len(classes)
    cells = y * k + pred
    parts = []
    for idx in stratified_resamples(y, n, seed):
        b = len(idx)
        flat = cells[idx] + (np.arange(b) * k * k)[:, None]
        cms = np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)
        parts.append(confusion_metrics(cms, classes, minority))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def point_metrics(
    y: np.ndarray, pred: np.ndarray, classes: list[str], minority: list[str]
) -> dict[str, float]:
    """`metric_names` on the full test set."""
    k = len(classes)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(1, k, k)
    return {name: float(v[0]) for name, v in confusion_metrics(cm, classes, minority).items()}


def interval(samples: np.ndarray) -> list[float]:
    """The 95% percentile interval."""
    return [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]


def p_value(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference (formula above)."""
    b = len(diffs)
    below, above = (1 + np.sum(diffs <= 0)) / (b + 1), (1 + np.sum(diffs >= 0)) / (b + 1)
    return float(min(1.0, 2 * min(below, above)))


def paired(
    samples: dict[str, np.ndarray],
    base_samples: dict[str, np.ndarray],
    point: dict[str, float],
    base_point: dict[str, float],
) -> dict[str, dict]:
    """Model minus baseline, from both models' bootstrap samples on the same resamples:
    `{metric: {delta (full test set), ci95 [lo, hi], p}}`."""
    out = {}
    for name in samples:
        d = samples[name] - base_samples[name]
        out[name] = {"delta": point[name] - base_point[name], "ci95": interval(d), "p": p_value(d)}
    return out


def confusion_rows(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> list[dict[str, str]]:
    """One row per test image (actual, predicted), the input of DVC's confusion template."""
    return [{"actual": classes[a], "predicted": classes[b]} for a, b in zip(y, pred)]


def curve_rows(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> tuple[list[dict], list[dict]]:
    """One-vs-rest ROC and PR curve points per class, for `dvc plots`."""
    roc, pr = [], []
    for i, c in enumerate(classes):
        truth = (y == i).astype(int)
        if 0 < truth.sum() < len(y):
            fpr, tpr, _ = _sk().roc_curve(truth, proba[:, i])
            roc += [{"class": c, "fpr": float(a), "tpr": float(b)} for a, b in zip(fpr, tpr)]
            precision, recall, _ = _sk().precision_recall_curve(truth, proba[:, i])
            pr += [{"class": c, "recall": float(a), "precision": float(b)} for a, b in zip(recall, precision)]
    return roc, pr

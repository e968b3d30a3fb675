"""Test-set metrics of one model: the CONTRACT's eval.json fields, ordinal-grade errors, curves
(the intervals and differences between variants are rebalance/learn/evidence.py's)."""

from __future__ import annotations

import functools
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


NOT_MEASURED = "not measured"  # a class without a test image has no recall, F1 or AUC


def measured(per_class: dict[str, dict]) -> dict[str, dict]:
    """eval.json's `per_class` as shown to a reader: a class without a test image (support 0) reads
    "not measured" for everything but its precision and support, never a recall of 0."""
    return {
        c: m
        if m.get("support", 1)
        else {k: v if k in ("precision", "support") else NOT_MEASURED for k, v in m.items()}
        for c, m in per_class.items()
    }


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

"""Test-set metrics: the CONTRACT's eval.json fields, ordinal-grade errors, curves, intervals."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")


def _headline(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }


def evaluate(y: np.ndarray, proba: np.ndarray, classes: list[str], ordinal: bool) -> dict:
    """All metrics of one model on one test set (y: true class indices, proba: N x C)."""
    pred = proba.argmax(1)
    labels = list(range(len(classes)))
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out = _headline(y, pred)
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    onehot = np.eye(len(classes))[y]
    for i, c in enumerate(classes):
        if 0 < onehot[:, i].sum() < len(y):
            out["per_class"][c]["auroc"] = float(roc_auc_score(onehot[:, i], proba[:, i]))
            out["per_class"][c]["auprc"] = float(average_precision_score(onehot[:, i], proba[:, i]))
    aurocs = [v["auroc"] for v in out["per_class"].values() if "auroc" in v]
    auprcs = [v["auprc"] for v in out["per_class"].values() if "auprc" in v]
    out["macro_auroc"] = float(np.mean(aurocs)) if aurocs else None
    out["macro_auprc"] = float(np.mean(auprcs)) if auprcs else None
    if ordinal:
        out["grade_mae"] = float(np.abs(pred - y).mean())
        out["qwk"] = float(cohen_kappa_score(y, pred, weights="quadratic", labels=labels))
    return out


def bootstrap(y: np.ndarray, pred: np.ndarray, n: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Percentile 95% intervals of the headline metrics, resampling the test set."""
    rng = np.random.default_rng(seed)
    samples = {k: [] for k in HEADLINE}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        for k, v in _headline(y[idx], pred[idx]).items():
            samples[k].append(v)
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()}


def confusion_rows(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> list[dict[str, str]]:
    """One row per test image (actual, predicted), the input of DVC's confusion template."""
    return [{"actual": classes[a], "predicted": classes[b]} for a, b in zip(y, pred)]


def curve_rows(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> tuple[list[dict], list[dict]]:
    """One-vs-rest ROC and PR curve points per class, for `dvc plots`."""
    roc, pr = [], []
    for i, c in enumerate(classes):
        truth = (y == i).astype(int)
        if 0 < truth.sum() < len(y):
            fpr, tpr, _ = roc_curve(truth, proba[:, i])
            roc += [{"class": c, "fpr": float(a), "tpr": float(b)} for a, b in zip(fpr, tpr)]
            precision, recall, _ = precision_recall_curve(truth, proba[:, i])
            pr += [{"class": c, "recall": float(a), "precision": float(b)} for a, b in zip(recall, precision)]
    return roc, pr

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


def _headline_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """accuracy, balanced accuracy and macro-F1 from a confusion matrix (rows: true), with
    scikit-learn's conventions: recall averaged over classes present in the truth, F1 over
    classes present in truth or prediction, 0 where undefined."""
    tp = np.diag(cm).astype(float)
    true_n, pred_n = cm.sum(1), cm.sum(0)
    present = true_n > 0
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=present)
    f1 = np.divide(2 * tp, true_n + pred_n, out=np.zeros_like(tp), where=(true_n + pred_n) > 0)
    return {
        "accuracy": float(tp.sum() / cm.sum()),
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[(true_n + pred_n) > 0].mean()),
    }


def bootstrap(y: np.ndarray, pred: np.ndarray, n: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Percentile 95% intervals of the headline metrics, resampling the test set with replacement."""
    rng = np.random.default_rng(seed)
    k = int(max(y.max(), pred.max())) + 1
    cell = y * k + pred
    samples = {name: [] for name in HEADLINE}
    for _ in range(n):
        cm = np.bincount(cell[rng.integers(0, len(y), len(y))], minlength=k * k).reshape(k, k)
        for name, value in _headline_from_confusion(cm).items():
            samples[name].append(value)
    return {
        name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for name, v in samples.items()
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
            fpr, tpr, _ = roc_curve(truth, proba[:, i])
            roc += [{"class": c, "fpr": float(a), "tpr": float(b)} for a, b in zip(fpr, tpr)]
            precision, recall, _ = precision_recall_curve(truth, proba[:, i])
            pr += [{"class": c, "recall": float(a), "precision": float(b)} for a, b in zip(recall, precision)]
    return roc, pr

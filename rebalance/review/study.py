"""The blinded reader study (as in the ISIC 2024 SD+LoRA study: 10 doctors, 20 real + 20
synthetic images): its image sequence and its statistics.

The sequence: `review.reader_study.real` real and `.synthetic` synthetic train images of the
study's classes (default: the minority classes, those with synthetic images), drawn and shuffled
from `review.reader_study.seed`; the same for every reader. Each answer (real or synthetic, and
optionally the class) is appended to metrics/reader_study_answers.csv; metrics/reader_study.json
reports, per reader, accuracy on the real and on the synthetic images (sensitivity and
specificity for "synthetic"), the pooled accuracy with a 95% Wilson interval, and inter-reader
agreement: Cohen's kappa for two readers, Fleiss' kappa for three or more (over the images every
reader answered; the latest answer of a reader to an image counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebalance.core import manifest

ANSWERS_COLUMNS = ["reader", "item", "answer", "class_answer", "time"]
KINDS = ("real", "synthetic")


def sequence(
    fused: pd.DataFrame, classes: list[str] | None, n_real: int, n_synthetic: int, seed: int
) -> list[dict]:
    """The study's items: [{"item", "kind", "path", "label", "sha256"}], shuffled (seeded)."""
    train = fused[fused.split == "train"]
    synthetic = train[manifest.synthetic(train)]
    chosen = classes or sorted(set(synthetic.label))
    rng = np.random.default_rng(seed)
    picks = []
    for kind, rows, n in (
        ("real", train[train.origin == "real"], n_real),
        ("synthetic", synthetic, n_synthetic),
    ):
        rows = rows[rows.label.isin(chosen)].sort_values("path")
        take = (
            rows.iloc[np.sort(rng.choice(len(rows), min(n, len(rows)), replace=False))] if len(rows) else rows
        )
        picks += [
            {"kind": kind, "path": r.path, "label": r.label, "sha256": r.sha256} for r in take.itertuples()
        ]
    order = rng.permutation(len(picks))
    return [{"item": k, **picks[i]} for k, i in enumerate(order)]


def wilson(k: int, n: int) -> list[float]:
    """95% Wilson score interval of a proportion k / n (statsmodels)."""
    if n == 0:
        return [float("nan"), float("nan")]
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return [round(float(lo), 4), round(float(hi), 4)]


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two raters' labels on the same items (scikit-learn); 1 when both gave
    every item the same one label (scikit-learn: undefined)."""
    if len(set(a) | set(b)) == 1:
        return 1.0
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(a, b))


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories table of rating counts, the same number of raters
    per item (statsmodels); 1 when every rating fell in one category (statsmodels: undefined)."""
    if (np.asarray(table).sum(0) > 0).sum() == 1:
        return 1.0
    from statsmodels.stats.inter_rater import fleiss_kappa as fleiss

    return float(fleiss(np.asarray(table), method="fleiss"))


def report(items: list[dict], answers: pd.DataFrame) -> dict:
    """metrics/reader_study.json from the items and every answer so far."""
    kind = {it["item"]: it["kind"] for it in items}
    label = {it["item"]: it["label"] for it in items}
    answers = answers.assign(item=answers["item"].astype(int))
    answers = answers[answers["item"].isin(kind)].drop_duplicates(["reader", "item"], keep="last")
    readers, correct_all, n_all = {}, 0, 0
    for reader, rows in answers.groupby("reader", sort=True):
        truth = rows["item"].map(kind)
        right = rows.answer == truth
        per = {"answered": len(rows)}
        for k in KINDS:
            sel = truth == k
            per[f"accuracy_{k}"] = round(float(right[sel].mean()), 4) if sel.any() else None
            per[f"n_{k}"] = int(sel.sum())
        per["accuracy"] = round(float(right.mean()), 4)
        with_class = rows[rows.class_answer.astype(str) != ""]
        if len(with_class):
            per["class_accuracy"] = round(
                float((with_class.class_answer == with_class["item"].map(label)).mean()), 4
            )
        readers[reader] = per
        correct_all, n_all = correct_all + int(right.sum()), n_all + len(rows)
    out = {
        "items": {"n": len(items), **{k: sum(it["kind"] == k for it in items) for k in KINDS}},
        "readers": readers,
        "accuracy": round(correct_all / n_all, 4) if n_all else None,
        "accuracy_ci95": wilson(correct_all, n_all),
        "chance": 0.5,
    }
    wide = answers.pivot(index="item", columns="reader", values="answer").dropna()
    if len(readers) == 2 and len(wide):
        a, b = (list(wide[c]) for c in wide.columns)
        out["agreement"] = {
            "measure": "cohen_kappa",
            "kappa": round(cohen_kappa(a, b), 4),
            "items": len(wide),
        }
    elif len(readers) > 2 and len(wide):
        table = np.stack([(wide == k).sum(1).to_numpy() for k in KINDS], axis=1)
        out["agreement"] = {
            "measure": "fleiss_kappa",
            "kappa": round(fleiss_kappa(table), 4),
            "items": len(wide),
        }
    out["sequence"] = [{"item": it["item"], "kind": it["kind"], "path": it["path"]} for it in items]
    return out

"""The variants x metrics table (seed 003's B0/W1/S2 table), as JSON and Markdown."""

from __future__ import annotations

import numpy as np

from stages.core.tables import markdown_table

COLUMNS = ("balanced_accuracy", "macro_f1", "accuracy", "macro_auroc", "macro_auprc", "qwk", "grade_mae")


def aggregate(per_seed: list[dict], minority: list[str]) -> dict:
    """Mean and std over seeds of the table's columns and the minority classes' recall."""

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        }

    out = {k: stats([m[k] for m in per_seed]) for k in COLUMNS if per_seed[0].get(k) is not None}
    for c in minority:
        out[f"recall_{c}"] = stats([m["per_class"][c]["recall"] for m in per_seed])
    return out


def markdown(rows: dict[str, dict], minority: list[str], headline: str, n_seeds: int, n_test: int) -> str:
    """One line per variant; minority-class recall first; mean ± std over seeds, 95% CI of seed 0."""
    cols = [f"recall_{c}" for c in minority] + [
        c for c in COLUMNS if c in next(iter(rows.values()))["mean_std"]
    ]
    lines = [
        f"Test set: {n_test} real images, identical for every variant. Values: mean ± std over "
        f"{n_seeds} seed(s); [95% bootstrap interval of the first seed's model] for balanced accuracy "
        f"and macro-F1. Headline model: `{headline}`.",
        "",
    ]
    table = []
    for name, r in rows.items():
        cells = []
        for c in cols:
            s = r["mean_std"][c]
            cell = f"{s['mean']:.3f} ± {s['std']:.3f}"
            if c in r.get("ci95", {}):
                lo, hi = r["ci95"][c]
                cell += f" [{lo:.3f}, {hi:.3f}]"
            cells.append(cell)
        table.append([name, *cells])
    return "\n".join([*lines, markdown_table(["variant", *cols], table)]) + "\n"

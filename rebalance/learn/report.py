"""The evidence: the headline variant against each baseline, and the variants x metrics table
(the ISIC 2024 SD+LoRA study's B0/W1/S2 table), as JSON and Markdown."""

from __future__ import annotations

import numpy as np

from rebalance.core.tables import markdown_table

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


def mean_over_seeds(per_seed: list[dict]) -> dict:
    """The per-seed metric dicts averaged key by key (nested dicts too); a value equal in every
    seed (e.g. a class's test support) is kept as is, None stays None."""
    out = {}
    for key, first in per_seed[0].items():
        values = [m[key] for m in per_seed]
        if isinstance(first, dict):
            out[key] = mean_over_seeds(values)
        elif all(v == first for v in values) or not isinstance(first, (int, float)):
            out[key] = first
        else:
            out[key] = float(np.mean(values))
    return out


BASELINES = {  # the variants every other one is compared with, in the order the answer reads
    "real_oversampled": (
        "the matched control: the same real images and flips, duplicated real images in place of the "
        "synthetic ones: did the synthetic images help?"
    ),
    "real": "the real images alone: does balancing help at all?",
    "real_weighted": "a class-weighted loss on the real images: does balancing beat reweighting?",
}
P_FORMULA = "p = min(1, 2 * min((1 + #{d <= 0}) / (B + 1), (1 + #{d >= 0}) / (B + 1)))"
POOLING = "mean of the seeds' softmax probabilities per test image, then argmax"


def holm(variants: dict[str, dict]) -> int:
    """Holm's adjustment (statsmodels) over the family of every paired difference (each variant
    minus each baseline, each metric): writes `p_holm` beside each `p`; returns the family's size."""
    from statsmodels.stats.multitest import multipletests

    family = [d for v in variants.values() for diffs in v.get("paired", {}).values() for d in diffs.values()]
    if family:
        adjusted = multipletests([d["p"] for d in family], method="holm")[1]
        for d, p in zip(family, adjusted):
            d["p_holm"] = float(p)
    return len(family)


def delta_text(d: dict) -> str:
    lo, hi = d["ci95"]
    held = f" (Holm {d['p_holm']:.2g})" if "p_holm" in d else ""
    return f"{d['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}], p = {d['p']:.2g}{held}"


def _not_measured(summary: dict) -> list[str]:
    missing = summary.get("not_measured", [])
    if not missing:
        return []
    names = ", ".join(missing)
    return [
        f"Not measured: {names}: no real test image, so no recall and no difference is reported for "
        "it (a value there would measure nothing).",
        "",
    ]


def _answer(summary: dict, metrics: list[str]) -> list[str]:
    head = summary["headline"]
    paired = summary["variants"][head].get("paired", {})
    if not paired:
        return [
            f"No baseline variant ({', '.join(BASELINES)}) besides `{head}` was trained: nothing to compare.",
            "",
        ]
    lines = []
    for base, diffs in paired.items():
        lines += [f"`{head}` vs `{base}` ({BASELINES[base]})", ""]
        lines += [f"- {head} vs {base}: {m} {delta_text(diffs[m])}" for m in metrics if m in diffs]
        lines.append("")
    return lines


def _generators(summary: dict, metrics: list[str]) -> list[str]:
    """Which generator helped: each balanced_<method> (real + that method's images only) against
    the first baseline trained, on the same paired statistics."""
    generators = summary.get("generators") or {}
    lines = []
    for method, variant in generators.items():
        paired = summary["variants"].get(variant, {}).get("paired", {})
        base = next((b for b in BASELINES if b in paired), None)
        if base is None:
            continue
        if not lines:
            lines = ["Which generator helped (real + one method's images, balanced's per-class counts):", ""]
        diffs = paired[base]
        deltas = "; ".join(f"{m} {delta_text(diffs[m])}" for m in metrics if m in diffs)
        lines.append(f"- `{method}` (`{variant}` vs `{base}`): {deltas}")
    return lines + [""] if lines else []


def variants_table(summary: dict) -> str:
    """The variants x metrics table: mean ± std over seeds · pooled [95% interval] where computed."""
    recalls = [f"recall_{c}" for c in summary["minority"] if c not in summary.get("not_measured", [])]
    first = next(iter(summary["variants"].values()))
    cols = recalls + [c for c in COLUMNS if c in first["mean_std"]]
    table = []
    for name, r in summary["variants"].items():
        cells = []
        for c in cols:
            s = r["mean_std"][c]
            cell = f"{s['mean']:.3f} ± {s['std']:.3f}"
            if c in r.get("ci95", {}):
                lo, hi = r["ci95"][c]
                cell += f" · {r['pooled'][c]:.3f} [{lo:.3f}, {hi:.3f}]"
            cells.append(cell)
        table.append([name, *cells])
    return markdown_table(["variant", *cols], table)


def markdown(summary: dict) -> str:
    """summary.json as Markdown: the answer first (the headline variant minus each baseline, per
    minority class and for balanced accuracy), how seeds are pooled and p computed, the variants x
    metrics table, then every variant's paired differences."""
    minority, variants = summary["minority"], summary["variants"]
    recalls = [f"recall_{c}" for c in minority if c not in summary.get("not_measured", [])]
    n_seeds, n_test, n_boot = len(summary["seeds"]), summary["n_test"], summary["bootstrap"]["resamples"]
    n_family = summary.get("holm_family", 0)
    lines = [
        *_answer(summary, [*recalls, "balanced_accuracy"]),
        *_generators(summary, [*recalls, "balanced_accuracy"]),
        f"Predictions pooled over seeds: each variant's {n_seeds} seed(s), {POOLING}; every difference "
        f"is pooled predictions minus pooled predictions on the same {n_test} real test images. "
        f"[95% paired bootstrap interval], {n_boot} resamples drawn within each true class (class "
        f"counts fixed); two-sided {P_FORMULA} over the B resampled differences d; (Holm: p adjusted "
        f"by Holm's method over the family of all {n_family} differences in summary.json).",
        "",
        *_not_measured(summary),
        f"Test set: {n_test} real images, identical for every variant. Values: mean ± std over "
        f"{n_seeds} seed(s) · pooled predictions [95% class-stratified bootstrap interval] where "
        f"computed. Headline model: `{summary['headline']}`.",
        "",
    ]
    lines.append(variants_table(summary))
    pairs = [
        [name, base, *(delta_text(diffs[m]) for m in [*recalls, "balanced_accuracy", "macro_f1"])]
        for name, r in variants.items()
        for base, diffs in r.get("paired", {}).items()
    ]
    if pairs:
        lines += [
            "",
            "Paired differences, every variant minus each baseline (pooled predictions): "
            "delta [95% interval], p.",
            "",
            markdown_table(["variant", "baseline", *recalls, "balanced_accuracy", "macro_f1"], pairs),
        ]
    return "\n".join(lines) + "\n"

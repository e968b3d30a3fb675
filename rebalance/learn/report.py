"""The summary's presentation: the variants x metrics table (the ISIC 2024 SD+LoRA study's
B0/A1/W1/S2/S2w table) and every paired difference, as Markdown after the generated verdict."""

from __future__ import annotations

import numpy as np

from rebalance.core.tables import markdown_table
from rebalance.learn import verdict
from rebalance.learn.evidence import HEADLINE, P_FORMULA, POOLING

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
    "balanced_unfiltered": "the release without the synthesis filter: did curation help?",
}
HEADLINE_ONLY = {"balanced_unfiltered"}  # baselines only the headline variant is compared with


def compares(variant: str, baseline: str, headline: str) -> bool:
    """Whether `variant` is compared with `baseline` (one of BASELINES)."""
    return variant != baseline and (baseline not in HEADLINE_ONLY or variant == headline)


def delta_text(d: dict) -> str:
    lo, hi = d["ci95"]
    held = f" (Holm {d['p_holm']:.2g})" if "p_holm" in d else ""
    return f"{d['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}], p = {d['p']:.2g}{held}"


def label(name: str, summary: dict) -> str:
    """A variant's name, with the ISIC 2024 SD+LoRA study's name for it where params give one."""
    study = summary["variants"][name].get("study")
    return f"{name} ({study})" if study else name


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
        table.append([label(name, summary), *cells])
    return markdown_table(["variant", *cols], table)


def markdown(summary: dict) -> str:
    """summary.json as Markdown: the generated verdict first, how the intervals are computed, the
    variants x metrics table, then every variant's paired differences."""
    recalls = [f"recall_{c}" for c in summary["minority"] if c not in summary.get("not_measured", [])]
    n_seeds, n_test, n_boot = len(summary["seeds"]), summary["n_test"], summary["bootstrap"]["resamples"]
    lines = [
        "## Verdict",
        "",
        verdict.markdown(summary),
        "## How it is measured",
        "",
        f"Every variant is scored on the same {n_test} real test images. Each variant trained "
        f"{n_seeds} seed(s); its prediction is the {POOLING}. [95% interval]: {n_boot} two-level "
        "bootstrap resamples (training seeds with replacement, then test images within each true "
        "class); a recall's interval is widened to the Wilson (one variant) or Newcombe paired (a "
        f"difference) interval where those are wider. Two-sided {P_FORMULA} over the B resampled "
        f"differences d; Holm: p adjusted over the family of all {summary.get('holm_family', 0)} "
        "differences in summary.json. Values in the table: mean ± std over seeds · pooled "
        f"[95% interval]. Headline model: `{summary['headline']}`.",
        "",
        variants_table(summary),
    ]
    pairs = [
        [label(name, summary), base, *(delta_text(diffs[m]) for m in [*recalls, *HEADLINE[:2]] if m in diffs)]
        for name, r in summary["variants"].items()
        for base, diffs in r.get("paired", {}).items()
    ]
    if pairs:
        lines += [
            "",
            "Paired differences, every variant minus each baseline: delta [95% interval], p (Holm).",
            "",
            markdown_table(["variant", "baseline", *recalls, *HEADLINE[:2]], pairs),
        ]
    return "\n".join(lines) + "\n"

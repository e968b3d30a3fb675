"""The numbers README.md quotes, generated from the committed metrics, never typed.

Each block between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` is the output of
`BLOCKS[NAME]` on the repository's metrics/. `python -m rebalance.readme` rewrites the blocks in
place; tests/test_readme.py fails when README.md and the metrics disagree.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rebalance.core import atomic
from rebalance.core.tables import markdown_table
from rebalance.learn import report, verdict
from rebalance.learn.report import delta_text


def evidence(root: Path) -> str:
    """The generated verdict, then the headline variant against each baseline and each generator
    against the matched control: delta [95% interval], raw p and Holm-adjusted p."""
    summary = json.loads((root / "metrics/summary.json").read_text())
    ev = json.loads((root / "metrics/eval.json").read_text())
    head, variants = summary["headline"], summary["variants"]
    missing = set(summary.get("not_measured", []))
    metrics = [f"recall_{c}" for c in summary["minority"] if c not in missing] + ["balanced_accuracy"]
    rows = [
        [f"{head} vs {base}", *(delta_text(d[m]) for m in metrics)]
        for base, d in variants[head]["paired"].items()
    ]
    for variant in summary.get("generators", {}).values():
        paired = variants.get(variant, {}).get("paired", {})
        base = next((b for b in summary["baselines"] if b in paired), None)
        if base is not None:
            rows.append([f"{variant} vs {base}", *(delta_text(paired[base][m]) for m in metrics)])
    lo, hi = ev["ci95"]["balanced_accuracy"]
    lines = [
        verdict.markdown(summary),
        f"Headline `{head}`: balanced accuracy {ev['balanced_accuracy']:.3f} (mean of {len(ev['seeds'])} "
        f"seeds; pooled {ev['pooled']['balanced_accuracy']:.3f} [{lo:.3f}, {hi:.3f}]) on {ev['n_test']} "
        "real test images.",
        "",
        markdown_table(["comparison", *metrics], rows),
        "",
        f"p: two-sided, two-level paired bootstrap; Holm: adjusted over all {summary.get('holm_family', 0)} "
        "differences in `metrics/summary.json`."
        + (f" Not measured (no test image): {', '.join(sorted(missing))}." if missing else ""),
    ]
    return "\n".join(lines)


def variants(root: Path) -> str:
    """Every variant's metrics on the committed build (metrics/summary.json)."""
    summary = json.loads((root / "metrics/summary.json").read_text())
    return report.variants_table(summary)


def synthesis(root: Path) -> str:
    """Per method and class, how the synthetic images measure against real ones
    (metrics/synthesis_quality.json); real val images are the reference row."""
    quality = json.loads((root / "metrics/synthesis_quality.json").read_text())
    keys = ["intended_class_rate", "real_vs_synthetic_auc", "frechet", "precision", "recall"]
    keys += ["density", "coverage", "near_copies_of_val_test"]
    rows = [
        [method, label, *(m.get(k) for k in keys)]
        for method, per_class in quality["per_method"].items()
        for label, m in per_class.items()
    ]
    return markdown_table(["images", "class", *keys], rows) + (
        "\n\nIntended-class rate: the share a classifier trained on real train images "
        f"(real val accuracy {quality['classifier']['real_val_accuracy']}) assigns to the intended class."
    )


BLOCKS = {"evidence": evidence, "variants": variants, "synthesis": synthesis}
_BLOCK = re.compile(r"(<!-- generated:(\w+) -->\n)(.*?)(<!-- /generated:\2 -->)", re.S)


def render(text: str, root: Path) -> str:
    """`text` with every generated block filled from `root`'s metrics."""
    return _BLOCK.sub(lambda m: m.group(1) + BLOCKS[m.group(2)](root) + "\n" + m.group(4), text)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    readme = root / "README.md"
    text = readme.read_text()
    new = render(text, root)
    if new != text:
        atomic.write_text(readme, new)
    print(f"{readme}: {'rewritten' if new != text else 'up to date'}")


if __name__ == "__main__":
    main()

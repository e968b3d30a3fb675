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

from rebalance import figures
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
    text = markdown_table(["images", "class", *keys], rows) + (
        "\n\nIntended-class rate: the share a classifier trained on real train images "
        f"(real val accuracy {quality['classifier']['real_val_accuracy']}) assigns to the intended class."
    )
    found = quality.get("foundation")
    if found:  # assess.features: the same measures in a foundation model's embedding
        keys = ["intended_class_rate", "precision", "recall", "density", "coverage", "frechet"]
        rows = [
            [method, label, *((m.get("foundation") or {}).get(k) for k in keys)]
            for method, per_class in quality["per_method"].items()
            for label, m in per_class.items()
        ]
        text += (
            f"\n\nIn the embedding of `{found['folder']}` ({found['model_type']}; intended-class rate by a "
            "linear probe on real train embeddings):\n\n" + markdown_table(["images", "class", *keys], rows)
        )
    return text


def gate(root: Path) -> str:
    """The release gate's synthetic-quality rows on the committed build (`release.gate.synthetic`
    against metrics/synthesis_quality.json): the checks that fail, or that all pass."""
    from rebalance import config
    from rebalance.registry.gate import synthetic_rows

    cfg = config.load(root / "params.yaml").release.gate.synthetic
    if cfg is None:
        return "`release.gate.synthetic` is off in params.yaml."
    rows = synthetic_rows(cfg, json.loads((root / "metrics/synthesis_quality.json").read_text()))
    failed = [[r["check"], r["value"]] for r in rows if not r["ok"]]
    if not failed:
        return f"All {len(rows)} synthetic-quality checks of the release gate pass."
    return f"{len(failed)} of {len(rows)} synthetic-quality checks of the release gate fail:\n\n" + (
        markdown_table(["check", "value"], failed)
    )


def dag(root: Path) -> str:
    """The stage graph of dvc.yaml (`dvc dag --md`) as a Mermaid flowchart: each foreach family of
    more than one stage (train@<variant>) drawn as one node, edges implied by longer paths left out."""
    import subprocess

    out = subprocess.run(["dvc", "dag", "--md"], cwd=root, capture_output=True, text=True, check=True).stdout
    names = dict(re.findall(r'(node\d+)\["([^"]+)"\]', out))
    prefix = {node: name.split("@")[0] for node, name in names.items()}
    size = {p: list(prefix.values()).count(p) for p in prefix.values()}
    label = {n: f"{prefix[n]} ×{size[prefix[n]]}" if size[prefix[n]] > 1 else names[n] for n in names}
    edges = {(label[a], label[b]) for a, b in re.findall(r"(node\d+)-->(node\d+)", out)}
    after = {a: {b for x, b in edges if x == a} for a in set(label.values())}

    def reachable(a: str) -> set[str]:
        seen, todo = set(), [a]
        while todo:
            for nxt in after[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    def implied(a: str, b: str) -> bool:  # b reached from a through another stage
        return any(b in reachable(c) for c in after[a] - {b})

    kept = sorted(e for e in edges if not implied(*e))
    ids = {name: f"s{i}" for i, name in enumerate(sorted(set(label.values())))}
    lines = ["```mermaid", "flowchart LR"]
    lines += [f'  {i}["{name}"]' for name, i in ids.items()]
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in kept]
    return "\n".join([*lines, "```"])


BLOCKS = {"evidence": evidence, "variants": variants, "synthesis": synthesis, "gate": gate, "dag": dag}
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
    for path in figures.draw(root):
        print(f"{path}: drawn")


if __name__ == "__main__":
    main()

"""The pictures README.md and docs/ show, drawn from the committed build, never by hand.

- `docs/img/balance.png`: each class's train images before balancing (real) and after (data/fused
  by origin), from metrics/counts.json and metrics/fused.json;
- `docs/img/samples.png`: real train images of each class that received synthetic ones, beside
  each method's kept images of that class, labelled (data/fused; skipped when it is not checked out);
- `docs/img/lesion_edits.png`: lesion edits beside the real images they were made from, labelled;
- `docs/img/confusion.png`: the row-normalised test confusion matrices of the headline, the
  matched control and the real-only baseline (metrics/plots/confusion/<variant>.csv).

`python -m rebalance.readme` draws them with the README's generated blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rebalance.core import atomic, manifest

IMG = Path("docs/img")
PER_GROUP = 4  # images per class and origin in samples.png
ORIGIN_COLOURS = {"real": "#4c72b0", "flip": "#a6bddb", "lesion_edit": "#dd8452", "diffusion": "#55a868",
                  "gan": "#c44e52", "sd_lora": "#8172b3"}  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def balance(root: Path) -> Path:
    """Stacked bars per class: the real train images before, data/fused train by origin after."""
    plt = _pyplot()
    counts = json.loads((root / "metrics/counts.json").read_text())
    fused = json.loads((root / "metrics/fused.json").read_text())["train"]
    classes = list(counts["splits"]["train"])
    origins = sorted({o for c in fused.values() for o in c}, key=lambda o: (o != "real", o != "flip", o))
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    ax.bar(
        x - 0.2, [counts["splits"]["train"][c] for c in classes], 0.38, color="#bbbbbb", label="before: real"
    )
    bottom = np.zeros(len(classes))
    for origin in origins:
        heights = np.array([fused.get(c, {}).get(origin, 0) for c in classes], dtype=float)
        ax.bar(x + 0.2, heights, 0.38, bottom=bottom, color=ORIGIN_COLOURS.get(origin, "#937860"),
               label=f"after: {origin}")  # fmt: skip
        bottom += heights
    for xi, total in zip(x, bottom):
        ax.text(xi + 0.2, total, f"{int(total)}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.1 * max(bottom.max(), 1))
    ax.set_xticks(x, classes)
    ax.set_ylabel("train images")
    ax.set_title("Train images per class, before and after balancing", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(root, "balance.png", fig)


def samples(root: Path, size: int = 96, fit: str = "crop") -> Path | None:
    """Rows: the classes with synthetic images; columns: real train images, then each method's."""
    from rebalance.core.images import load_array

    fused_dir = root / "data/fused"
    if not (fused_dir / "manifest.csv").exists():
        return None
    rows = pd.read_csv(fused_dir / "manifest.csv", dtype=str, keep_default_na=False)
    train = rows[rows.split == "train"]
    made = train[manifest.synthetic(train)]
    classes = sorted(set(made.label))
    groups = ["real", *sorted(set(made.origin))]
    if not classes or not all((fused_dir / p).exists() for p in train.path.head(1)):
        return None
    plt = _pyplot()
    cols = len(groups) * PER_GROUP
    fig, axes = plt.subplots(
        len(classes), cols, figsize=(0.95 * cols, 1.05 * len(classes) + 0.5), squeeze=False
    )
    for r, label in enumerate(classes):
        for g, origin in enumerate(groups):
            pick = (
                train[(train.label == label) & (train.origin == origin)].sort_values("path").head(PER_GROUP)
            )
            for k in range(PER_GROUP):
                ax = axes[r][g * PER_GROUP + k]
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_color(ORIGIN_COLOURS.get(origin, "#937860"))
                    side.set_linewidth(2)
                if k < len(pick):
                    ax.imshow(load_array(fused_dir / pick.path.iloc[k], size, fit))
                if r == 0 and k == 0:
                    ax.set_title(origin, fontsize=9, loc="left")
            axes[r][0].set_ylabel(label, fontsize=9)
    fig.suptitle("Real train images (left) beside the kept synthetic images of the same class", fontsize=10)
    fig.tight_layout()
    return _save(root, "samples.png", fig)


def lesion_edits(root: Path, size: int = 96, fit: str = "crop", pairs: int = 4) -> Path | None:
    """Each class's first lesion edits, each beside the real train image it was made from (which
    may be of another class: a lower grade with lesions added), titled with both classes."""
    from rebalance.core.images import load_array

    fused_dir, raw_dir = root / "data/fused", root / "data/raw"
    if not (fused_dir / "manifest.csv").exists():
        return None
    rows = pd.read_csv(fused_dir / "manifest.csv", dtype=str, keep_default_na=False)
    edits = rows[(rows.split == "train") & (rows.origin == "lesion_edit")].sort_values("path")
    classes = sorted(set(edits.label))
    if (
        not classes
        or not (fused_dir / edits.path.iloc[0]).exists()
        or not (raw_dir / edits.source.iloc[0]).exists()
    ):
        return None
    source_label = dict(zip(rows[rows.origin == "real"].root, rows[rows.origin == "real"].label))
    plt = _pyplot()
    fig, axes = plt.subplots(len(classes), 2 * pairs, figsize=(1.0 * 2 * pairs, 1.25 * len(classes) + 0.5),
                             squeeze=False)  # fmt: skip
    for r, label in enumerate(classes):
        mine = edits[edits.label == label].head(pairs)
        for k in range(pairs):
            for j, ax in enumerate(axes[r][2 * k : 2 * k + 2]):
                ax.set_xticks([])
                ax.set_yticks([])
                if k >= len(mine):
                    ax.axis("off")
                    continue
                row = mine.iloc[k]
                if j == 0:
                    ax.imshow(load_array(raw_dir / row.source, size, fit))
                    ax.set_title(f"source ({source_label.get(row.source, '?')})", fontsize=7)
                else:
                    ax.imshow(load_array(fused_dir / row.path, size, fit))
                    ax.set_title(f"edit → {label}", fontsize=7)
                    for side in ax.spines.values():
                        side.set_color(ORIGIN_COLOURS["lesion_edit"])
                        side.set_linewidth(2)
    fig.suptitle("Lesion edits: each real train image (left) and the edit made from it (right)", fontsize=10)
    fig.tight_layout()
    return _save(root, "lesion_edits.png", fig)


def confusion(root: Path) -> Path:
    """Row-normalised confusion matrices of the headline, the control and the real-only baseline."""
    plt = _pyplot()
    summary = json.loads((root / "metrics/summary.json").read_text())
    head = summary["headline"]
    control = summary["baselines"][0] if summary.get("baselines") else None  # the matched control
    variants = [v for v in dict.fromkeys(["real", control, head]) if v in summary["variants"]]
    classes = None
    fig, axes = plt.subplots(1, len(variants), figsize=(3.1 * len(variants), 3.7), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        pairs = pd.read_csv(root / f"metrics/plots/confusion/{variant}.csv", dtype=str)
        classes = classes or sorted(set(pairs.actual) | set(pairs.predicted))
        m = pd.crosstab(pairs.actual, pairs.predicted).reindex(index=classes, columns=classes, fill_value=0)
        share = m.to_numpy() / np.maximum(m.to_numpy().sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")  # fmt: skip
        ax.set_xticks(range(len(classes)), classes, fontsize=7, rotation=45)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_title(variant, fontsize=9)
    axes[0][0].set_ylabel("true", fontsize=8)
    fig.suptitle("Test confusion (rows sum to 1; the seeds' probabilities averaged)", fontsize=10)
    fig.tight_layout()
    return _save(root, "confusion.png", fig)


def _save(root: Path, name: str, fig) -> Path:
    path = root / IMG / name
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_figure(path, fig)
    _pyplot().close(fig)
    return path


def draw(root: Path) -> list[Path]:
    """Every picture; the ones drawn."""
    drawn = (balance(root), samples(root), lesion_edits(root), confusion(root))
    return [p for p in drawn if p is not None]

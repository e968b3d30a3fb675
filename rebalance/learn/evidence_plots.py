"""The pictures of stage evaluate, drawn from summary.json alone.

- `evidence.png`, a forest plot: one row per comparison (each variant minus each baseline), the
  difference on the full test set as a point, its 95% interval as a bar, a zero line; one panel for
  balanced accuracy and one per minority class's recall. Rows the verdict reads are coloured by
  what it says.
- `recall_by_variant.png`: each class's recall per variant (pooled prediction, 95% interval).
"""

from __future__ import annotations

from pathlib import Path

from rebalance.core import atomic
from rebalance.learn import verdict

COLOURS = {"helped": "#1b7837", "hurt": "#b2182b", "inconclusive": "#e08214"}
QUIET = "#555555"  # not detectable, or a row the verdict does not read


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def comparisons(summary: dict) -> list[tuple[str, dict]]:
    """(row label, {metric: difference}) for every variant minus each baseline: the verdict's
    questions first, in its order, then the rest in table order."""
    asked = [(a["variant"], a["baseline"]) for a in summary.get("verdict") or []]
    rest = [
        (v, b) for v, r in summary["variants"].items() for b in r.get("paired", {}) if (v, b) not in asked
    ]
    return [(f"{v} − {b}", summary["variants"][v]["paired"][b]) for v, b in asked + rest]


def forest(summary: dict, path: Path) -> None:
    plt = _pyplot()
    rows = comparisons(summary)
    missing = set(summary.get("not_measured") or [])
    panels = [verdict.METRIC, *(f"recall_{c}" for c in summary["minority"] if c not in missing)]
    read = {(a["variant"], a["baseline"]): a["reading"] for a in summary.get("verdict") or []}
    height = 1.6 + 0.32 * max(1, len(rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 2.4, height), sharey=True)
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, metric in zip(axes, panels):
        for i, (name, diffs) in enumerate(rows):
            d = diffs.get(metric)
            if d is None:
                continue
            v, b = name.split(" − ")
            colour = COLOURS.get(read.get((v, b), ""), QUIET) if metric == verdict.METRIC else QUIET
            lo, hi = d["ci95"]
            ax.plot([lo, hi], [i, i], color=colour, linewidth=2)
            ax.plot([d["delta"]], [i], "o", color=colour, markersize=5)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), [name for name, _ in rows])
    for tick in axes[0].get_yticklabels()[: len(read)]:  # the rows the verdict reads
        tick.set_fontweight("bold")
    axes[0].invert_yaxis()
    keys = [*COLOURS, "not detectable, or not asked"]
    handles = [plt.Line2D([], [], color=COLOURS.get(k, QUIET), marker="o", linewidth=2) for k in keys]
    fig.legend(handles, keys, loc="lower center", ncol=len(keys), fontsize=8, frameon=False)
    fig.suptitle(
        f"Variant minus baseline on {summary['n_test']} real test images: difference, 95% interval",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    atomic.write_figure(path, fig)
    plt.close(fig)


def recall_by_variant(summary: dict, classes: list[str], path: Path) -> None:
    plt = _pyplot()
    missing = set(summary.get("not_measured") or [])
    measured = [c for c in classes if c not in missing]
    names = list(summary["variants"])
    fig, ax = plt.subplots(figsize=(3.2 + 0.9 * len(measured) * max(1, len(names)) / 4, 3.6))
    width = 0.8 / max(1, len(names))
    cmap = plt.get_cmap("tab10")
    for j, name in enumerate(names):
        r = summary["variants"][name]
        for i, c in enumerate(measured):
            key = f"recall_{c}"
            if key not in r["pooled"]:
                continue
            x, (lo, hi) = i - 0.4 + (j + 0.5) * width, r["ci95"][key]
            ax.plot([x, x], [lo, hi], color=cmap(j % 10), linewidth=1.5)
            ax.plot(
                [x], [r["pooled"][key]], "o", color=cmap(j % 10), markersize=4, label=name if i == 0 else None
            )
    ax.set_xticks(range(len(measured)), measured)
    ax.set_xlabel("class (every variant on the same real test images)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("recall (pooled, 95% interval)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic.write_figure(path, fig)
    plt.close(fig)

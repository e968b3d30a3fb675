"""The pictures of stage assess: a t-SNE map of real vs synthetic images and per-class sample grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rebalance.core import atomic

TSNE_PER_GROUP = 1000  # points drawn per group (real/<class>, <method>/<class>): a readable map, bounded time


def tsne_sample(groups: list[str], per_group: int, seed: int) -> np.ndarray:
    """Indices of at most `per_group` points of each group, drawn with `seed`, in their order."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(groups)
    keep = []
    for g in sorted(set(groups)):
        idx = np.flatnonzero(labels == g)
        keep.append(idx if len(idx) <= per_group else rng.choice(idx, per_group, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, int)


def tsne_plot(
    features: np.ndarray, groups: list[str], seed: int, path: Path, per_group: int = TSNE_PER_GROUP
) -> None:
    """A t-SNE map of at most `per_group` points per group (drawn with `seed`): time and memory
    stay bounded however large the dataset, and no group hides another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    keep = tsne_sample(groups, per_group, seed)
    sampled = len(keep) < len(groups)
    features, groups = features[keep], [groups[i] for i in keep]
    xy = TSNE(
        n_components=2, perplexity=min(30, max(2, len(features) // 4)), init="pca", random_state=seed
    ).fit_transform(features)
    fig, ax = plt.subplots(figsize=(7, 6))
    labels = np.asarray(groups)
    for g in sorted(set(groups)):
        sel = labels == g
        ax.scatter(
            xy[sel, 0],
            xy[sel, 1],
            s=6 if g.startswith("real") else 10,
            alpha=0.6,
            label=g,
            marker="o" if g.startswith("real") else "x",
        )
    ax.legend(fontsize=6, markerscale=2, ncol=2)
    title = "t-SNE of real vs synthetic train images (CNN + colour features)"
    ax.set_title(title + (f"\nrandom sample: at most {per_group:,} points per group" if sampled else ""))
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    atomic.write_figure(path, fig)
    plt.close(fig)


def grid_plot(label: str, blocks: dict[str, np.ndarray], n: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(blocks), n, figsize=(1.3 * n, 1.4 * len(blocks)), squeeze=False)
    for r, (name, images) in enumerate(blocks.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c])
        axes[r][0].set_title(name, fontsize=8, loc="left")
    fig.suptitle(f"{label}: real train images and synthetic ones, by method", fontsize=9)
    fig.tight_layout()
    atomic.write_figure(path, fig)
    plt.close(fig)

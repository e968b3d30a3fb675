"""What changed in the published files between two revisions: real images added, removed or moved
between splits, synthetic images new or gone, per class (the release notes of a card and of
`rebalance compare`).

A revision's manifest (data/fused/manifest.csv) is read through DVC's file system: from the
local cache, else the remote; a revision whose data neither holds gives None, and the notes say so.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from rebalance.core import manifest, paths
from rebalance.core.tables import markdown_table

LISTING = (paths.FUSED / manifest.FILENAME).as_posix()


def manifest_at(root: Path, rev: str | None) -> pd.DataFrame | None:
    """data/fused/manifest.csv at `rev` (None: the working tree), or None where it cannot be read."""
    if rev is None:
        file = root / LISTING
        return manifest.read(file) if file.is_file() else None
    from dvc.api import DVCFileSystem

    try:
        fs = DVCFileSystem(str(root), rev=rev)
        with fs.open(LISTING, "rb") as f:
            data = f.read()
    except Exception:  # noqa: BLE001 - any DVC/git failure means: not readable at that revision
        return None
    return manifest.parse(io.BytesIO(data), f"{LISTING}@{rev}")


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as {"a.b.c": leaf} (params, metrics)."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def diff(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:
    """b against a. Real images by (source, sha256): added, removed (per split and class of the
    revision that has them) and moved between splits; derived files (synthetic, flips) by sha256:
    new and gone, per class and origin."""
    key = ["source", "sha256"]
    real_a, real_b = a[a.origin == "real"], b[b.origin == "real"]
    both = real_a.merge(real_b, on=key, suffixes=("_a", "_b"))
    ids_a, ids_b = set(map(tuple, real_a[key].values)), set(map(tuple, real_b[key].values))
    added = real_b[[k not in ids_a for k in map(tuple, real_b[key].values)]]
    removed = real_a[[k not in ids_b for k in map(tuple, real_a[key].values)]]
    moved = both[both.split_a != both.split_b]
    made_a, made_b = a[a.origin != "real"], b[b.origin != "real"]
    new = made_b[~made_b.sha256.isin(set(made_a.sha256))]
    gone = made_a[~made_a.sha256.isin(set(made_b.sha256))]

    def per(df: pd.DataFrame, *by: str) -> dict[str, int]:
        sizes = df.groupby(list(by)).size().items()
        return {"/".join(k) if isinstance(k, tuple) else k: int(n) for k, n in sizes}

    return {
        "real_added": per(added, "split", "label"),
        "real_removed": per(removed, "split", "label"),
        "real_moved": per(moved, "split_a", "split_b"),
        "derived_new": per(new, "label", "origin"),
        "derived_gone": per(gone, "label", "origin"),
        "unchanged": int(len(b) - len(added) - len(new) - len(moved)),
        "files": [len(a), len(b)],
    }


def lines(d: dict[str, Any] | None, a: str, b: str) -> list[str]:
    """The diff as Markdown (one table of every change), or a line saying it could not be read."""
    if d is None:
        return [f"The file lists could not be read at both {a} and {b} (`{LISTING}` not in the DVC cache"
                " or remote)."]  # fmt: skip
    rows = [
        *[["real images added", k, n] for k, n in d["real_added"].items()],
        *[["real images removed", k, n] for k, n in d["real_removed"].items()],
        *[["real images moved (from/to split)", k, n] for k, n in d["real_moved"].items()],
        *[["derived files new (class/origin)", k, n] for k, n in d["derived_new"].items()],
        *[["derived files gone (class/origin)", k, n] for k, n in d["derived_gone"].items()],
    ]
    head = f"{d['files'][0]} files in {a}, {d['files'][1]} in {b}."
    if not rows:
        return [f"{head} The same files in both."]
    return [head, "", markdown_table(["change", "split/class", "files"], rows)]

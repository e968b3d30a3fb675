"""Counts, the seeded stratified split, per-class targets, deficits and the generation plan."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sklearn.model_selection import train_test_split

from stages.core.schema import SPLITS
from stages.core.tables import markdown_table
from stages.dataset import demo, ingest


def real_images(params: dict[str, Any], raw_dir: Path | None = None) -> list[tuple[str, str]]:
    """(name relative to data/raw, label) of every real image, sorted.

    Reads `raw_dir` when given (the ingested data/raw); otherwise works from the source alone:
    the demo's file list, or the user's folder (so `rebalance plan` runs before `dvc repro`).
    """

    classes = params["dataset"]["classes"]
    raw = params["raw"]
    if raw_dir is None and raw["source"] == "demo":
        return sorted(demo.file_names(classes, raw["demo"]["scale"]))
    folder = raw_dir if raw_dir is not None else Path(raw["source"])
    return sorted(ingest.scan(folder, classes, on_bad_file="skip", verify=False).images)


def split(images: list[tuple[str, str]], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded stratified split of real images: name -> train/val/test."""
    names = [n for n, _ in images]
    labels = [c for _, c in images]
    test_size = fractions["test"]
    rest, test, rest_y, _ = train_test_split(
        names, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    val_share = fractions["val"] / (fractions["train"] + fractions["val"])
    train, val = train_test_split(rest, test_size=val_share, stratify=rest_y, random_state=seed)
    out = {n: "train" for n in train}
    out.update({n: "val" for n in val})
    out.update({n: "test" for n in test})
    return out


def split_counts(images: list[tuple[str, str]], assignment: dict[str, str], classes: list[str]) -> dict:
    counts = {s: {c: 0 for c in classes} for s in SPLITS}
    for name, label in images:
        counts[assignment[name]][label] += 1
    return counts


def targets(train_counts: dict[str, int], strategy: str, n: int | None = None) -> dict[str, int]:
    """Target per class. `fixed`: max(n, count), never removing real images (seed 000);
    `max`: every class up to the largest."""
    if strategy == "fixed":
        return {c: max(int(n), k) for c, k in train_counts.items()}
    if strategy == "max":
        top = max(train_counts.values())
        return {c: top for c in train_counts}
    raise ValueError(f"unknown target strategy {strategy!r}")


def allocate(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Split `total` images across methods by share (largest remainder; ties by method order)."""
    raw = {m: total * s for m, s in shares.items()}
    out = {m: math.floor(v) for m, v in raw.items()}
    left = total - sum(out.values())
    for m in sorted(raw, key=lambda m: (-(raw[m] - out[m]), list(shares).index(m)))[:left]:
        out[m] += 1
    return out


def build(params: dict[str, Any], images: list[tuple[str, str]]) -> dict[str, Any]:
    """The whole plan: splits, per-class counts, targets, deficits, per-method quotas, estimates."""
    classes = params["dataset"]["classes"]
    count = params["count"]
    assignment = split(images, count["split"], count["seed"])
    per_split = split_counts(images, assignment, classes)
    train = per_split["train"]
    tgt = targets(train, count["target"]["strategy"], count["target"]["n"])
    shares = params["synthesize"]["methods"]
    quota = {c: allocate(tgt[c] - train[c], shares) for c in classes}
    secs, dollars = count["seconds_per_image"], count["dollars_per_image"]
    n_by_method = {m: sum(q[m] for q in quota.values()) for m in shares}
    return {
        "assignment": assignment,
        "raw": {c: sum(per_split[s][c] for s in SPLITS) for c in classes},
        "splits": per_split,
        "target": tgt,
        "generated": quota,
        "estimate": {
            "images": sum(n_by_method.values()),
            "seconds": round(sum(n * secs.get(m, 0.0) for m, n in n_by_method.items()), 1),
            "dollars": round(sum(n * dollars.get(m, 0.0) for m, n in n_by_method.items()), 2),
        },
    }


def counts_json(plan: dict[str, Any]) -> dict[str, Any]:
    """The CONTRACT's metrics/counts.json view of a plan."""
    return {k: plan[k] for k in ("raw", "splits", "target", "generated")} | {"estimate": plan["estimate"]}


def balance_table(counts: dict[str, Any]) -> str:
    """Seed 000's table, on the train split: original / to generate (per method) / total."""
    methods = list(next(iter(counts["generated"].values())).keys())
    rows = []
    for c, target in counts["target"].items():
        original = counts["splits"]["train"][c]
        gen = counts["generated"][c]
        rows.append([c, original, sum(gen.values()), *[gen[m] for m in methods], target])
    tot = [sum(r[i] for r in rows) for i in range(1, len(rows[0]))]
    rows.append(["total", *tot])
    return markdown_table(["class", "original", "to generate", *methods, "total"], rows, pad=True)


def split_table(counts: dict[str, Any]) -> str:
    """Seed 004's table: real images per split and class, with totals and imbalance ratio."""
    classes = list(counts["raw"])
    rows = []
    for s in (*SPLITS, "total"):
        per = counts["raw"] if s == "total" else counts["splits"][s]
        n = [per[c] for c in classes]
        ratio = f"1:{max(n) / min(n):.2f}" if min(n) > 0 else "n/a"
        rows.append([s, sum(n), *n, ratio])
    return markdown_table(["split", "images", *classes, "max:min"], rows, pad=True)

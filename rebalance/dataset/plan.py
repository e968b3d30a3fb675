"""Counts, the split of the real images, per-class targets, deficits and the generation plan."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from rebalance.config import SPLITS, Params
from rebalance.core import paths, window
from rebalance.core.errors import RebalanceError
from rebalance.core.tables import markdown_table
from rebalance.dataset import demo, duplicates, ingest, metadata, source, split
from rebalance.dataset.split import RealSet


def real_images(params: Params, raw_dir: Path | None = None) -> RealSet:
    """The real images with what the split needs: labels, fingerprints, groups, official split.

    Stage count passes `raw_dir` (data/raw, ingested by stage raw). Without it (`rebalance
    plan`), data/raw is used when it was ingested with the current params; otherwise the source
    itself: a user's folder gives the same split as `dvc repro` would, the demo (not yet rendered)
    only its file names, so its split counts are then estimates (`prints` is None).
    """
    if raw_dir is None:
        ingested = paths.RAW_INGEST
        if ingested.is_file() and json.loads(ingested.read_text()) == ingest.settings(params):
            raw_dir = paths.RAW
    if raw_dir is not None:
        return from_raw(Path(raw_dir), params)
    classes, raw = params.dataset.classes, params.raw
    if raw.source == "demo":
        return RealSet(sorted(demo.file_names(classes, raw.demo.scale)), paths.RAW)
    window.set_window(raw.window)  # 16-bit images: the pixels stage raw writes to data/raw
    src = source.read(params)
    attached = metadata.attach(src.dataset, src.found.source, src.found.official)
    found = src.found.prints  # the verifying workers' fingerprints (an .npz's are computed here)
    todo = [f for (name, _), f in zip(src.found.images, source.files(src)) if name not in found]
    computed = iter(duplicates.of_files(todo))
    prints = [found[n].fingerprint if n in found else next(computed) for n, _ in src.found.images]
    if src.extracted:
        shutil.rmtree(src.root, ignore_errors=True)
    return RealSet(src.found.images, src.root, prints, attached.groups, attached.official)


def from_raw(raw_dir: Path, params: Params) -> RealSet:
    """The ingested images of data/raw (their index images.csv; a bare folder of classes works too)."""
    index = raw_dir / paths.RAW_INDEX.name
    if not raw_dir.is_dir():
        raise RebalanceError(f"{raw_dir}: not found; run stage raw first (dvc repro)")
    if index.is_file():
        df = metadata.read_index(index)
        images = list(zip(df.path, df.label))
        groups = {p: g for p, g in zip(df.path, df.group) if g}
        official = {p: s for p, s in zip(df.path, df.split) if s}
    else:
        found = ingest.scan(raw_dir, params.dataset.classes)  # verified, as stage raw does
        images = sorted((found.source[n], label) for n, label in found.images)  # the files as they are
        groups, official = {}, {}
    table = raw_dir / paths.RAW_FINGERPRINTS.name  # stage raw's, for a folder or CSV source
    known = duplicates.read_table(table) if table.is_file() else {}
    computed = iter(duplicates.of_files([raw_dir / n for n, _ in images if n not in known]))
    prints = [known[n][1] if n in known else next(computed) for n, _ in images]
    return RealSet(
        images, raw_dir, prints, groups, official, {n: known[n][0] for n, _ in images if n in known}
    )


def build(params: Params, real: RealSet, measured: dict[str, dict] | None = None) -> dict[str, Any]:
    """The whole plan: splits, per-class counts, targets, deficits, per-method quotas, estimates
    (`measured`: the last run's seconds and dollars per image by method, `measured_speed`; where
    it lacks a number, count.seconds_per_image / dollars_per_image)."""
    classes = params.dataset.classes
    count = params.count
    limits = count.max_per_class
    redraw = count.official_val == "redraw"
    fractions = count.split.model_dump()  # {split: fraction}
    bits, min_test = count.near_duplicate_bits, count.min_test_per_class
    released = split.released_test(paths.FROZEN_TEST_SET, count.new_test_set)
    result = split.make(real, classes, fractions, count.seed, bits, limits, redraw, min_test, released)
    per_split = split.counts(real.images, result.assignment, classes)
    train = per_split["train"]
    tgt = targets(train, count.target.strategy, count.target.n)
    shares = params.synthesize.methods
    quota = {c: allocate(tgt[c] - train[c], shares) for c in classes}
    n_by_method = {m: sum(q[m] for q in quota.values()) for m in shares}
    rates = per_image(count, list(shares), measured or {})
    return {
        "assignment": result.assignment,
        "identity": result.identity,
        "raw": {c: sum(per_split[s][c] for s in SPLITS) for c in classes},
        "splits": per_split,
        "target": tgt,
        "generated": quota,
        # synthetic images planned per real train image, per class (count.max_synthetic_ratio warns)
        "synthetic_ratio": synthetic_ratio(train, quota),
        "estimate": {
            "images": sum(n_by_method.values()),
            "seconds": round(sum(n * rates[m]["seconds_per_image"] for m, n in n_by_method.items()), 1),
            "dollars": round(sum(n * rates[m]["dollars_per_image"] for m, n in n_by_method.items()), 2),
            # per method: images, the rates used and where each came from ("measured" or "from params")
            "per_method": {m: {"images": n, **rates[m]} for m, n in n_by_method.items()},
        },
        # how the split was made: `hash` (of each identity and count.seed) or `official` (the
        # source's); identities from `content` (pixels, groups) or, for the demo before it is
        # rendered (`rebalance plan` before `dvc repro`), from `file name`: split counts are estimates
        "split_method": result.method,
        "split_identity": "content" if real.prints is not None else "file name",
        "duplicates": result.duplicates,
        "dropped": result.dropped,  # official split: val/test copies of earlier-split images, left out
        "sampled_out": result.sampled_out,  # count.max_per_class: images of a class left out, per class
        "drawn_from_train": result.drawn,  # official split without val/test: images drawn from its train
        "topped_up": result.topped_up,  # count.min_test_per_class: {class: {split: images moved there}}
        "val_merged": sum(s == "val" and n not in result.dropped for n, s in real.official.items()) * redraw,
        # patients (dataset.group_by, group_pattern or a CSV's `group` column), each in one split
        "groups": {"groups": len(set(real.groups.values())), "images": len(real.groups)},
        # the last release's test set kept (releases/test_set.json; count.new_test_set: false):
        # {"release", "kept", "gone": its images no longer in the source, "redrawn": new images drawn
        # among train and val}, and the images left out to keep it (name -> why)
        "kept_test": result.kept_test,
        "held_out": result.held_out,
        "warnings": result.warnings,
    }


def measured_speed(path: Path = paths.SYNTHESIS_SPEED) -> dict[str, dict]:
    """The last synthesize run's measured seconds and dollars per image, by method
    (metrics/synthesis_speed.json, rebalance/synth/speed.py; a number is None where that run
    generated nothing or knew no price; {} before any run)."""
    try:
        per_method = json.loads(Path(path).read_text())["per_method"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    keys = ("seconds_per_image", "dollars_per_image")
    return {m: {k: v.get(k) for k in keys} for m, v in per_method.items() if isinstance(v, dict)}


def per_image(count: Any, methods: list[str], measured: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """Seconds and dollars per image of each method: measured where the last run measured them,
    else count.seconds_per_image / dollars_per_image (0 when neither gives one); with where each
    came from (`seconds_from`, `dollars_from`: "measured" or "from params")."""
    out = {}
    for m in methods:
        given = measured.get(m, {})
        rate = {}
        for key, typed in (
            ("seconds_per_image", count.seconds_per_image),
            ("dollars_per_image", count.dollars_per_image),
        ):
            value = given.get(key)
            rate[key] = float(value) if value is not None else float(typed.get(m, 0.0))
            rate[key.split("_")[0] + "_from"] = "measured" if value is not None else "from params"
        out[m] = rate
    return out


def estimate_lines(counts: dict[str, Any]) -> list[str]:
    """One line per method: its images, seconds and dollars per image, and which numbers were
    measured (metrics/synthesis_speed.json) and which typed in (count.*_per_image)."""
    lines = []
    for m, e in counts["estimate"].get("per_method", {}).items():
        lines.append(
            f"{m}: {e['images']} images x {e['seconds_per_image']:.3g} s ({e['seconds_from']}), "
            f"${e['dollars_per_image']:.4g} per image ({e['dollars_from']})"
        )
    return lines


def counts_json(plan: dict[str, Any]) -> dict[str, Any]:
    """The CONTRACT's metrics/counts.json view of a plan (plus how the split was made)."""
    keys = ("raw", "splits", "target", "generated", "synthetic_ratio", "estimate", "split_method")
    keys += ("split_identity", "duplicates", "dropped", "sampled_out", "drawn_from_train", "topped_up")
    keys += ("val_merged", "groups", "kept_test", "held_out", "warnings")
    return {k: plan[k] for k in keys}


def synthetic_ratio(train: dict[str, int], generated: dict[str, dict[str, int]]) -> dict[str, float | None]:
    """Synthetic images planned per real train image, per class (rounded to 2 places)."""
    return {c: round(sum(gen.values()) / train[c], 2) if train[c] else None for c, gen in generated.items()}


def ratio_warnings(counts: dict[str, Any], limit: float) -> list[str]:
    """A line for each class planned above `limit` synthetic images per real train image
    (count.max_synthetic_ratio); a warning, not a refusal."""
    train = counts["splits"]["train"]
    ratios = synthetic_ratio(train, counts["generated"])  # counts.json written before it had the key too
    return [
        f"class {c}: {r:.2f} synthetic images per real train image ({sum(counts['generated'][c].values())} "
        f"to generate, {train[c]} real), above count.max_synthetic_ratio {limit:g}; gains from synthetic "
        "images level off near 10:1 (Sagers et al. 2023): add real images or lower count.target"
        for c, r in ratios.items()
        if r is not None and r > limit
    ]


def targets(train_counts: dict[str, int], strategy: str, n: int | None = None) -> dict[str, int]:
    """Target per class. `fixed`: max(n, count), never removing real images (the ACNEDIT ACNE04 supplement);
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


def balance_table(counts: dict[str, Any]) -> str:
    """The ACNEDIT ACNE04 supplement's table, on the train split: original / to generate (per
    method) / total, and the synthetic images per real one."""
    methods = list(next(iter(counts["generated"].values())).keys())
    rows = []
    for c, target in counts["target"].items():
        original = counts["splits"]["train"][c]
        gen = counts["generated"][c]
        rows.append([c, original, sum(gen.values()), *[gen[m] for m in methods], target])
    tot = [sum(r[i] for r in rows) for i in range(1, len(rows[0]))]
    rows.append(["total", *tot])
    for r in rows:
        r.append(f"{r[2] / r[1]:.2f}" if r[1] else "n/a")
    header = ["class", "original", "to generate", *methods, "total", "synthetic per real"]
    return markdown_table(header, rows, pad=True)


def split_table(counts: dict[str, Any]) -> str:
    """The PneumoniaMNIST DCGAN study's table: real images per split and class, with totals and
    imbalance ratio."""
    classes = list(counts["raw"])
    rows = []
    for s in (*SPLITS, "total"):
        per = counts["raw"] if s == "total" else counts["splits"][s]
        n = [per[c] for c in classes]
        ratio = f"1:{max(n) / min(n):.2f}" if min(n) > 0 else "n/a"
        rows.append([s, sum(n), *n, ratio])
    return markdown_table(["split", "images", *classes, "max:min"], rows, pad=True)


def split_notes(counts: dict[str, Any]) -> str:
    """How the split was made, duplicates and warnings: the lines under `rebalance plan`'s tables."""
    if counts["split_method"] == "official":
        lines = ["Split: the source's own (official) split, used as is.", *drawn_lines(counts)]
    elif counts["split_identity"] == "file name":
        lines = [
            "Split: ESTIMATED from file names (data/raw is not yet rendered with these params); "
            "`dvc repro count` splits by image content, so its per-class counts differ slightly."
        ]
    else:
        lines = [
            "Split: each image by a hash of its identity (group, else decoded pixels) and count.seed; "
            "per-class counts are close to, not exactly, count.split."
        ]
    if counts["duplicates"]:
        n = sum(len(g) for g in counts["duplicates"])
        lines.append(f"Duplicates: {n} images in {len(counts['duplicates'])} groups, each kept in one split.")
    lines += group_lines(counts) + sampled_lines(counts) + quota_lines(counts) + kept_test_lines(counts)
    lines += [f"warning: {w}" for w in counts["warnings"]]
    return "\n".join(lines)


def group_lines(counts: dict[str, Any]) -> list[str]:
    """The patients (or lesions) the split kept whole (none before counts.json recorded them)."""
    found = counts.get("groups", {"groups": 0})
    if not found["groups"]:
        return []
    return [
        f"Groups: {found['groups']} (patients, lesions, ...) of {found['images']} images, each in one split."
    ]


def drawn_lines(counts: dict[str, Any]) -> list[str]:
    """The splits an official split lacked (or the val count.official_val redraws), drawn from its
    train images (none before this existed)."""
    why = {s: f"the source has no {s} split" for s in SPLITS}
    if counts.get("val_merged"):
        why["val"] = f"the source's {counts['val_merged']} val images merged into train (count.official_val)"
    return [
        f"Drawn: {why[s]}; {n} of its train images drawn into {s} (count.split's proportions, by a hash "
        "of each identity; its own splits are kept as given)."
        for s, n in counts.get("drawn_from_train", {}).items()
    ]


def quota_lines(counts: dict[str, Any]) -> list[str]:
    """The classes count.min_test_per_class gave train images to val or test (none before it existed)."""
    return [
        f"Quota: class {label} had too few {' and '.join(moved)} images for count.min_test_per_class; "
        + ", ".join(f"{n} moved into {s}" for s, n in moved.items())
        + " (from its train, lowest split hash first)."
        for label, moved in counts.get("topped_up", {}).items()
    ]


def kept_test_lines(counts: dict[str, Any]) -> list[str]:
    """The last release's test set kept (releases/test_set.json): how many of its images, which are
    gone from the source, what new images were drawn or left out to keep it."""
    kept = counts.get("kept_test") or {}
    if not kept:
        return []
    held = counts.get("held_out") or {}
    gone = kept["gone"]
    lines = [
        f"Test set kept from {kept['release']}: {kept['kept']} of its images; images new to the source go "
        f"to train or val ({kept['redrawn']} drawn there, count.new_test_set: false)."
    ]
    if gone:
        release = kept["release"]
        lines.append(f"{len(gone)} test image(s) of {release} no longer in the source, first: {gone[0]}.")
    if held:
        first = next(iter(held))
        why = held[first]
        lines.append(f"{len(held)} new image(s) left out to keep the test set, first: {first} ({why}).")
    return lines


def sampled_lines(counts: dict[str, Any]) -> list[str]:
    """What count.max_per_class left out (none for counts written before it existed)."""
    return [
        f"Sampled: {n} real {label} images left out by count.max_per_class (a seeded sample of whole "
        "groups and duplicate sets kept; they stay in data/raw)."
        for label, n in counts.get("sampled_out", {}).items()
        if n
    ]

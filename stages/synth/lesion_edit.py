"""ACNEDIT-style local edit: add real lesions to a real train image of a lower (or equal) grade.

1. Analyse: the detector (stages/detector.py) finds the source's skin and its current lesions.
2. Overlay: a target count is drawn inside the target grade's bin (away from its ends by
   `bin_margin`; an open top bin is capped at low + `open_bin_span` - 1), and target - current
   lesions from the lesion bank (stages/synth/bank.py: cut from train images of the severe
   grades) are Poisson-blended in log-RGB (stages/synth/blend.py) at skin pixels away from the
   skin's edge, the image border, existing lesions and each other. Log-domain blending takes tone
   and lighting from the destination.
3. Refine: a thin ring around each blended disk is inpainted (cv2.inpaint) to remove seams, and
   grain is matched: noise at the destination's level is added where inpainting smoothed it and
   where the bank patch was cleaner than the destination.
4. Verify: the detector re-counts the result; outside the target bin the attempt is rejected and
   retried with a new sub-seed (then with the next source). Pixels outside the dilated edit mask
   (the disks in `detail.lesions`, [y, x, radius]) are copied from the source byte for byte.

Sources are spread over candidates and their KMeans clusters (stages/synth/sources.py). Every
image's seed is image_seed(dataset, class, method, index); `cache_key` lets the synthesize stage
reuse an unchanged image instead of regenerating it.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi

from stages import detector, params as params_mod
from stages.errors import RebalanceError
from stages.images import load_array, save_png
from stages.synth import Context, bank, blend, image_seed, output_path, sources

METHOD = "lesion_edit"
SPACING = 0.75  # blended disks may overlap in their outer quarter (skin, not lesion)
VERSION = f"lesion_edit-2/{detector.VERSION}"
DEFAULTS: dict[str, Any] = {
    "clusters": 4,  # KMeans clusters of candidate sources
    "sources": "lower",  # lower: lower grades (equal only for the lowest grade) | lower_or_equal
    "bank_grades": None,  # grades the lesion bank is cut from; default: the upper half
    "bank_images": 24,  # train images cut into the bank
    "bank_per_image": 16,  # lesions cut per bank image (at most)
    "open_bin_span": 30,  # an open top bin [low, null] is treated as [low, low + span - 1]
    "bin_margin": 0.15,  # target count this fraction of the bin's width inside either end
    "edge_margin": 3,  # px of skin kept free along the skin's edge
    "gap": 1.5,  # px between blended disks and detected lesions
    "ring": 2,  # px: seam ring inpainted around each disk
    "max_tries": 4,  # attempts (sub-seeds) per source before moving to the next source
    "max_sources": 5,  # sources tried per image before giving up
}


def settings(params: dict) -> dict[str, Any]:
    """synthesize.lesion_edit merged over the defaults, unknown keys rejected."""
    cfg = params_mod.with_defaults(
        params["synthesize"].get("lesion_edit"), DEFAULTS, "synthesize.lesion_edit"
    )
    if cfg["sources"] not in ("lower", "lower_or_equal"):
        raise RebalanceError("params.yaml: synthesize.lesion_edit.sources must be lower or lower_or_equal")
    return cfg


def _bins(ctx: Context) -> dict[str, tuple[int, float]]:
    bins = params_mod.lesion_bins(ctx.params)
    if bins is None:
        raise RebalanceError(
            "params.yaml: lesion_edit needs lesion-count grading (dataset.lesion_bins) and this "
            "dataset has none; use the diffusion method in synthesize.methods instead"
        )
    return bins


def target_range(bin_: tuple[int, float], current: int, cfg: dict) -> tuple[int, int] | None:
    """Counts to aim for from `current`: inside the bin (margin from its ends), above current."""
    lo = int(bin_[0])
    hi = lo + cfg["open_bin_span"] - 1 if math.isinf(bin_[1]) else int(bin_[1])
    m = int(cfg["bin_margin"] * (hi - lo))
    for a, b in ((lo + m, hi - m), (lo, hi)):
        a = max(a, current + 1)
        if a <= b:
            return a, b
    return None


# ---- per-run state, memoised on the context -------------------------------------------------


def _candidates(ctx: Context, label: str, cfg: dict):
    """Source candidates of `label` in spread order (with cluster ids)."""
    key = ("lesion_edit/candidates", label)
    if key not in ctx.cache:
        classes = ctx.params["dataset"]["classes"]
        grade = classes.index(label)
        allowed = (
            classes[: grade + 1] if cfg["sources"] == "lower_or_equal" or grade == 0 else classes[:grade]
        )
        pool = ctx.train_real[ctx.train_real.label.isin(allowed)]
        if pool.empty:
            raise RebalanceError(
                f"lesion_edit: no train images of grade {label!r} or lower to edit; "
                "give this class's deficit to another method in synthesize.methods"
            )
        seed = image_seed(ctx.params["dataset"]["name"], label, METHOD, "sources")
        feats = ctx.cache.setdefault("lesion_edit/features", {})
        ctx.cache[key] = sources.plan(pool, ctx.raw_dir, cfg["clusters"], seed, feats)
    return ctx.cache[key]


def _bank_images(ctx: Context, cfg: dict):
    key = "lesion_edit/bank_images"
    if key not in ctx.cache:
        classes = ctx.params["dataset"]["classes"]
        grades = cfg["bank_grades"] or classes[len(classes) // 2 :]
        seed = image_seed(ctx.params["dataset"]["name"], METHOD, "bank")
        ctx.cache[key] = bank.bank_images(ctx.train_real, grades, cfg["bank_images"], seed)
    return ctx.cache[key]


def _bank(ctx: Context, cfg: dict) -> list[bank.Entry]:
    key = "lesion_edit/bank"
    if key not in ctx.cache:
        images = _bank_images(ctx, cfg)
        seed = image_seed(ctx.params["dataset"]["name"], METHOD, "bank")
        entries = bank.build(images, ctx.raw_dir, cfg["bank_per_image"], seed)
        if not entries:
            raise RebalanceError(
                "lesion_edit: the lesion bank is empty (no isolated lesions found in train images "
                f"of grades {cfg['bank_grades'] or 'upper half'}); check synthesize.lesion_edit.bank_grades"
            )
        ctx.cache[key] = entries
    return ctx.cache[key]


def cache_key(ctx: Context, label: str, index: int) -> str:
    """Everything that determines image `index` of `label`: equal key, identical file."""
    cfg = settings(ctx.params)
    bins = _bins(ctx)
    cands = _candidates(ctx, label, cfg)
    planned = cands.iloc[index % len(cands)]
    fps = ctx.cache.setdefault("lesion_edit/fingerprints", {})
    if label not in fps:
        fps[label] = (bank.fingerprint(cands), bank.fingerprint(_bank_images(ctx, cfg)))
    cand_fp, bank_fp = fps[label]
    parts = {
        "version": VERSION,
        "cfg": cfg,
        "bin": [bins[label][0], None if math.isinf(bins[label][1]) else bins[label][1]],
        "seed": image_seed(ctx.params["dataset"]["name"], label, METHOD, index),
        "source": [planned.path, planned.sha256],
        "candidates": cand_fp,
        "bank": bank_fp,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


# ---- the edit ----------------------------------------------------------------------------------


def edit_image(
    image: np.ndarray,
    found: detector.Analysis,
    n_add: int,
    entries: list[bank.Entry],
    rng: np.random.Generator,
    cfg: dict,
) -> tuple[np.ndarray, list[list[int]]]:
    """Blend `n_add` bank lesions into `image`; return (result, disks [y, x, radius] of the edit).

    Every pixel outside the union of the returned disks equals the input's.
    """
    h, w, _ = image.shape
    ring = int(cfg["ring"])
    skin = ndi.binary_erosion(found.skin, iterations=int(cfg["edge_margin"]))
    ys, xs = np.nonzero(skin)
    canvas = image.astype(np.float32)
    ty = found.peaks[:, 0].astype(float)
    tx = found.peaks[:, 1].astype(float)
    tr = np.full(len(ty), 3.0)
    placed: list[tuple[int, int, bank.Entry]] = []
    for _ in range(n_add if len(ys) else 0):
        entry = entries[int(rng.integers(len(entries)))]
        half, pad = entry.half, entry.half + ring + 1
        pick = rng.integers(len(ys), size=60)
        y, x = ys[pick], xs[pick]
        ok = (y >= pad) & (x >= pad) & (y < h - pad) & (x < w - pad)
        if len(ty):
            d = np.hypot(y[:, None] - ty[None, :], x[:, None] - tx[None, :])
            ok &= np.all(d >= SPACING * (entry.radius + tr[None, :]) + cfg["gap"], axis=1)
        if not ok.any():
            continue
        j = int(np.argmax(ok))
        y, x = int(y[j]), int(x[j])
        blend.poisson_log(canvas, entry.patch, blend.disk(entry.radius, half), y - half, x - half)
        ty, tx, tr = np.append(ty, y), np.append(tx, x), np.append(tr, entry.radius)
        placed.append((y, x, entry))
    dest_noise = bank.grain(image, found.skin)
    seam = np.zeros((h, w), dtype=np.uint8)
    edit = np.zeros((h, w), dtype=bool)
    level = np.zeros((h, w), dtype=np.float32)
    disks = []
    for y, x, entry in placed:
        reach = int(math.ceil(entry.radius + ring))
        y0, y1, x0, x1 = max(0, y - reach), min(h, y + reach + 1), max(0, x - reach), min(w, x + reach + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(yy - y, xx - x)
        inside = d <= entry.radius
        level[y0:y1, x0:x1][inside] = math.sqrt(max(dest_noise**2 - entry.noise**2, 0.0))
        seam[y0:y1, x0:x1][np.abs(d - entry.radius) <= 1.0] = 1
        edit[y0:y1, x0:x1] |= d <= reach
        disks.append([y, x, reach])
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if placed:
        out = cv2.inpaint(out, seam, ring, cv2.INPAINT_TELEA)
        noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), 0.6)
        noise /= noise.std() + 1e-6
        level[seam > 0] = dest_noise
        out = np.clip(np.rint(out.astype(np.float32) + (noise * level)[..., None]), 0, 255).astype(np.uint8)
    out = np.where(edit[..., None], out, image)
    return out, disks


def _attempt(ctx, label, index, src, attempt, cfg, bins, entries):
    """One try: (image, row detail) when the re-detected count lands in the bin, else None."""
    image = load_array(ctx.raw_dir / src.path)
    found = detector.analyse(image)
    span = target_range(bins[label], found.count, cfg)
    if span is None:
        return None, "full"
    rng = np.random.default_rng(
        image_seed(ctx.params["dataset"]["name"], label, METHOD, index, src.path, attempt)
    )
    target = int(rng.integers(span[0], span[1] + 1))
    out, disks = edit_image(image, found, target - found.count, entries, rng, cfg)
    recount = detector.count(out)
    lo, hi = bins[label]
    if not (lo <= recount <= hi):
        return None, "miss"
    detail = {
        "source_label": src.label,
        "detected_before": found.count,
        "target": target,
        "detected_after": recount,
        "added": len(disks),
        "attempt": attempt,
        "lesions": disks,
    }
    return out, detail


def generate(ctx: Context, label: str, indices: list[int]) -> list[dict]:
    from stages import manifest

    bins = _bins(ctx)
    cfg = settings(ctx.params)
    if not indices:
        return []
    cands = _candidates(ctx, label, cfg)
    entries = _bank(ctx, cfg)
    rows = []
    for index in indices:
        seed = image_seed(ctx.params["dataset"]["name"], label, METHOD, index)
        result = None
        for k in range(min(cfg["max_sources"], len(cands))):
            src = cands.iloc[(index + k * max(1, len(cands) // cfg["max_sources"])) % len(cands)]
            for attempt in range(cfg["max_tries"]):
                out, detail = _attempt(ctx, label, index, src, attempt, cfg, bins, entries)
                if out is not None:
                    result = (src, out, detail)
                    break
                if detail == "full":  # source already at or above the bin's top
                    break
            if result:
                break
        if result is None:
            raise RebalanceError(
                f"lesion_edit: could not make image {index} of {label!r} land in its lesion bin "
                f"after {cfg['max_sources']} sources x {cfg['max_tries']} tries; raise "
                "synthesize.lesion_edit.max_tries or check the detector (metrics/detector.json)"
            )
        src, out, detail = result
        path = output_path(METHOD, label, index)
        sha = save_png(out, ctx.out_dir / path)
        rows.append(
            manifest.row(
                path=path,
                split="train",
                label=label,
                origin=METHOD,
                source=src.path,
                root=src.root,
                sha256=sha,
                seed=seed,
                cluster=int(src.cluster),
                detail=detail,
            )
        )
    return rows


def sample_grid(rows: list[dict], raw_dir, out_dir, classes: list[str], per_class: int = 4) -> np.ndarray:
    """Sources beside their edits: per target grade, `per_class` pairs in a row."""
    tiles = []
    for label in classes:
        mine = sorted(
            (r for r in rows if r["label"] == label and r["origin"] == METHOD), key=lambda r: r["path"]
        )
        if not mine:
            continue
        pick = [mine[int(i)] for i in np.linspace(0, len(mine) - 1, min(per_class, len(mine)))]
        pairs = [
            np.concatenate([load_array(raw_dir / r["source"], 128), load_array(out_dir / r["path"], 128)], 1)
            for r in pick
        ]
        pairs += [np.zeros_like(pairs[0])] * (per_class - len(pairs))
        tiles.append(
            np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255) for p in pairs], 1)
        )
    if not tiles:
        return np.full((8, 8, 3), 255, dtype=np.uint8)
    return np.concatenate(tiles, 0)

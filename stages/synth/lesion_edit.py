"""ACNEDIT-style local edit (first version): add lesions to a real train image of a lower grade.

The number of lesions added is chosen so that, whatever the source's count inside its own bin,
the result's count lands inside the target grade's bin. Lesions are painted from the local skin
colour (so they match the destination's tone and lighting) on skin pixels only.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import binary_erosion

from stages import lesions, params as params_mod
from stages.errors import RebalanceError
from stages.images import load_array, save_png
from stages.synth import Context, image_seed, output_path

METHOD = "lesion_edit"
OPEN_BIN_EXTRA = 25  # for an open top bin, add up to this many lesions above its lower bound


def skin_mask(image: np.ndarray) -> np.ndarray:
    """Skin pixels by the classic YCrCb box (Chai & Ngan), eroded away from non-skin borders."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    mask = (cr >= 133) & (cr <= 180) & (cb >= 70) & (cb <= 130)
    return binary_erosion(mask, iterations=3)


def lesions_to_add(source_bin: tuple, target_bin: tuple) -> tuple[int, int] | None:
    """Range of lesions to add so any count in source_bin lands in target_bin (None if impossible)."""
    lo = target_bin[0] - source_bin[0]
    hi = target_bin[1] - source_bin[1] if not math.isinf(target_bin[1]) else lo + OPEN_BIN_EXTRA
    return (lo, hi) if 0 < lo <= hi else None


def generate(ctx: Context, label: str, indices: list[int]) -> list[dict]:
    from stages import manifest

    bins = params_mod.lesion_bins(ctx.params)
    if bins is None:
        raise RebalanceError(
            "params.yaml: lesion_edit needs lesion-count grading (dataset.lesion_bins) and this "
            "dataset has none; use the diffusion method in synthesize.methods instead"
        )
    classes = ctx.params["dataset"]["classes"]
    ranges = {c: lesions_to_add(bins[c], bins[label]) for c in classes[: classes.index(label)]}
    sources = ctx.train_real[ctx.train_real.label.isin([c for c, r in ranges.items() if r])]
    if sources.empty:
        raise RebalanceError(
            f"lesion_edit: no train images of a lower grade than {label!r} to edit; "
            "give this class's deficit to another method in synthesize.methods"
        )
    sources = sources.sort_values("path").reset_index(drop=True)
    order = np.random.default_rng(image_seed(ctx.params["dataset"]["name"], label, METHOD)).permutation(len(sources))
    rows = []
    for index in indices:
        src = sources.iloc[order[index % len(sources)]]
        seed = image_seed(ctx.params["dataset"]["name"], label, METHOD, index)
        rng = np.random.default_rng(seed)
        lo, hi = ranges[src.label]
        n_add = int(rng.integers(lo, hi + 1))
        image = load_array(ctx.raw_dir / src.path)
        canvas = image.astype(np.float32)
        severity = classes.index(label) / (len(classes) - 1)
        kinds = list(rng.choice(lesions.LESION_KINDS, size=n_add, p=lesions.lesion_kind_probs(severity)))
        spots = lesions.place(rng, skin_mask(image), kinds, taken=[], gap=2.0, tries=200)
        for spot in spots:
            lesions.draw(canvas, spot)
        path = output_path(METHOD, label, index)
        sha = save_png(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), ctx.out_dir / path)
        rows.append(manifest.row(
            path=path, split="train", label=label, origin=METHOD, source=src.path, root=src.root,
            sha256=sha, seed=seed,
            detail={"source_label": src.label, "lesions_added": len(spots), "lesions_planned": n_add},
        ))
    return rows

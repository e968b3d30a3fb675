"""ACNEDIT-style local edit: add real lesions to a real train image of a lower (or equal) grade.

1. Analyse: the detector (rebalance/synth/detector.py) finds the source's skin and its current lesions.
2. Overlay: a target count is drawn inside the target grade's bin (away from its ends by
   `bin_margin`; an open top bin is capped at low + `open_bin_span` - 1), and target - current
   lesions from the lesion bank (rebalance/synth/bank.py: cut from train images of the severe
   grades) are Poisson-blended in log-RGB (rebalance/synth/blend.py) at skin pixels away from the
   skin's edge, the image border, existing lesions and each other. Log-domain blending takes tone
   and lighting from the destination.
3. Refine: a thin ring around each blended disk is inpainted (cv2.inpaint) to remove seams, and
   grain is matched: noise at the destination's level is added where inpainting smoothed it and
   where the bank patch was cleaner than the destination.
4. Verify: the detector re-counts the result; outside the target bin the attempt is rejected and
   retried with a new sub-seed (then with the next source). Pixels outside the dilated edit mask
   (the disks in `detail.lesions`, [y, x, radius]) are copied from the source byte for byte.

Sources are spread over candidates and their KMeans clusters (rebalance/synth/sources.py). Every
image's seed is ctx.seed(class, method, index); `cache_key` (which includes a hash of this code)
lets the synthesize stage
reuse an unchanged image instead of regenerating it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math

import numpy as np
import pandas as pd

from rebalance.core.code import code_hash, versions
from rebalance.core.errors import RebalanceError
from rebalance.core.images import load_array, save_png
from rebalance.core.progress import progress
from rebalance.dataset.grading import lesion_bins
from rebalance.synth import bank, detector, sources
from rebalance.synth.base import Context, output_path, synthetic_row
from rebalance.synth.overlay import edit_image, target_range

METHOD = "lesion_edit"
# Libraries whose numerics shape an edit: a new version regenerates the images.
LIBRARIES = versions("numpy", "scipy", "opencv-python-headless", "scikit-image", "scikit-learn", "pillow")


class LesionEditor:
    """The lesion-edit method for one run: source candidates per class and one lesion bank.

    Both are built on first use and kept: the candidates of a class (clustered and in spread
    order) when that class is first asked for, the bank (cut from severe-grade train images) when
    the first image is keyed or made.
    """

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.cfg = ctx.params.synthesize.lesion_edit
        self.classes = ctx.params.dataset.classes
        bins = lesion_bins(ctx.params)
        if bins is None:
            raise RebalanceError(
                "params.yaml: lesion_edit needs lesion-count grading (dataset.lesion_bins) and this "
                "dataset has none; use the diffusion method in synthesize.methods instead"
            )
        self.bins = bins
        self._features: dict[str, np.ndarray] = {}  # colour/texture features per image, all classes
        self._candidates: dict[str, pd.DataFrame] = {}

    def candidates(self, label: str) -> pd.DataFrame:
        """Source candidates of `label` (lower grades) in spread order, with cluster ids."""
        if label not in self._candidates:
            grade = self.classes.index(label)
            lower_or_equal = self.cfg.sources == "lower_or_equal" or grade == 0
            allowed = self.classes[: grade + 1] if lower_or_equal else self.classes[:grade]
            pool = self.ctx.train_real[self.ctx.train_real.label.isin(allowed)]
            if pool.empty:
                raise RebalanceError(
                    f"lesion_edit: no train images of grade {label!r} or lower to edit; "
                    "give this class's deficit to another method in synthesize.methods"
                )
            seed = self.ctx.seed(label, METHOD, "sources")
            self._candidates[label] = sources.plan(
                pool, self.ctx.raw_dir, self.cfg.clusters, seed, self._features, self.cfg.spread,
                fit=self.ctx.params.dataset.fit,
            )  # fmt: skip
        return self._candidates[label]

    @functools.cached_property
    def bank_images(self) -> pd.DataFrame:
        """The train images the lesion bank is cut from."""
        grades = self.cfg.bank_grades or self.classes[len(self.classes) // 2 :]
        seed = self.ctx.seed(METHOD, "bank")
        return bank.bank_images(self.ctx.train_real, grades, self.cfg.bank_images, seed)

    @functools.cached_property
    def bank(self) -> list[bank.Entry]:
        seed = self.ctx.seed(METHOD, "bank")
        entries = bank.build(self.bank_images, self.ctx.raw_dir, self.cfg.bank_per_image, seed)
        if not entries:
            raise RebalanceError(
                "lesion_edit: the lesion bank is empty (no isolated lesions found in train images "
                f"of grades {self.cfg.bank_grades or 'upper half'}); "
                "check synthesize.lesion_edit.bank_grades"
            )
        return entries

    @functools.cache  # noqa: B019 - one editor per run; the cache dies with it
    def _fingerprints(self, label: str) -> tuple[str, str]:
        return bank.fingerprint(self.candidates(label)), bank.fingerprint(self.bank_images)

    def cache_key(self, label: str, index: int) -> str:
        """Everything that determines image `index` of `label`: equal key, identical file."""
        cands = self.candidates(label)
        planned = cands.iloc[index % len(cands)]
        cand_fp, bank_fp = self._fingerprints(label)
        lo, hi = self.bins[label]
        parts = {
            "code": code_hash(__name__),  # this module and every project module it imports
            "versions": LIBRARIES,
            "cfg": self.cfg.model_dump(),  # synthesize.lesion_edit
            "bin": [lo, None if math.isinf(hi) else hi],
            "seed": self.ctx.seed(label, METHOD, index),
            "source": [planned.path, planned.sha256],
            "candidates": cand_fp,
            "bank": bank_fp,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def generate(self, label: str, indices: list[int]) -> list[dict[str, str]]:
        """Edit a lower-grade source into `label` for each index (next sources if one fails)."""
        if not indices:
            return []
        cands, tries, n_sources = self.candidates(label), self.cfg.max_tries, self.cfg.max_sources
        rows = []
        for index in progress(indices, f"lesion_edit {label}"):
            result, used = None, 0
            for position in self._source_order(index, len(cands)):
                src = cands.iloc[position]
                for attempt in range(tries):
                    out, detail = self._attempt(label, index, src, attempt)
                    if out is not None:
                        result = (src, out, detail)
                        break
                    if detail == "full":  # at or above the bin's top: skipped, not counted
                        break
                used += detail != "full"
                if result or used >= n_sources:
                    break
            if result is None:
                raise RebalanceError(
                    f"lesion_edit: could not make image {index} of {label!r} land in its lesion bin "
                    f"after {n_sources} sources x {tries} tries; raise "
                    "synthesize.lesion_edit.max_tries or check the detector (metrics/detector.json)"
                )
            src, out, detail = result
            path = output_path(METHOD, label, index)
            sha, seed = save_png(out, self.ctx.out_dir / path), self.ctx.seed(label, METHOD, index)
            rows.append(synthetic_row(path, label, METHOD, seed, sha, detail, src))
        return rows

    def _source_order(self, index: int, n: int) -> list[int]:
        """Candidate positions for image `index`: `max_sources` spread over the list, then the rest."""
        stride = max(1, n // self.cfg.max_sources)
        spread = [(index + k * stride) % n for k in range(self.cfg.max_sources)]
        return list(dict.fromkeys(spread + [(index + j) % n for j in range(n)]))

    def _attempt(self, label: str, index: int, src, attempt: int):
        """One try: (image, row detail) when the re-detected count lands in the bin, else (None, why)."""
        image = load_array(self.ctx.raw_dir / src.path)
        found = detector.analyse(image)
        span = target_range(self.bins[label], found.count, self.cfg)
        if span is None:
            return None, "full"
        rng = np.random.default_rng(self.ctx.seed(label, METHOD, index, src.path, attempt))
        target = int(rng.integers(span[0], span[1] + 1))
        out, disks = edit_image(image, found, target - found.count, self.bank, rng, self.cfg)
        recount = detector.count(out)
        lo, hi = self.bins[label]
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


def sample_grid(
    rows: list[dict], raw_dir, out_dir, classes: list[str], per_class: int = 4, *, fit: str = "stretch"
) -> np.ndarray:
    """Sources beside their edits: per target grade, `per_class` pairs in a row, each image
    brought to 128 x 128 by `fit` (dataset.fit), each pair captioned with the source's grade and
    the edit's ("source level0 | edit level2")."""
    tiles = []
    for label in classes:
        mine = sorted(
            (r for r in rows if r["label"] == label and r["origin"] == METHOD), key=lambda r: r["path"]
        )
        if not mine:
            continue
        pick = [mine[int(i)] for i in np.linspace(0, len(mine) - 1, min(per_class, len(mine)))]
        pairs = [
            np.concatenate(
                [load_array(raw_dir / r["source"], 128, fit), load_array(out_dir / r["path"], 128, fit)], 1
            )
            for r in pick
        ]
        captions = [
            f"source {json.loads(r['detail'] or '{}').get('source_label', '?')} | edit {label}" for r in pick
        ]
        pairs += [np.zeros_like(pairs[0])] * (per_class - len(pairs))
        captions += [""] * (per_class - len(captions))
        tiles.append(np.concatenate([_captioned(p, c) for p, c in zip(pairs, captions)], 1))
    if not tiles:
        return _note(f"no {METHOD} images in this run (synthesize.methods gives it no share)")
    return np.concatenate(tiles, 0)


def _captioned(pair: np.ndarray, caption: str) -> np.ndarray:
    """A source|edit pair in a 2-pixel white frame under its caption."""
    framed = np.pad(pair, ((2, 2), (2, 2), (0, 0)), constant_values=255)
    return np.concatenate([_caption(caption, framed.shape[1]), framed])


def _caption(text: str, width: int) -> np.ndarray:
    """A white strip `width` pixels wide with `text` centred (Pillow's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    strip = Image.new("RGB", (width, 18), "white")
    draw = ImageDraw.Draw(strip)
    draw.text(((width - draw.textlength(text, font=font)) / 2, 2), text, fill="black", font=font)
    return np.asarray(strip)


def _note(text: str) -> np.ndarray:
    """A white tile that says why a plot has no images (Pillow's built-in font: no font file)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    width = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font))
    tile = Image.new("RGB", (width + 16, 28), "white")
    ImageDraw.Draw(tile).text((8, 6), text, fill="black", font=font)
    return np.asarray(tile)

"""Synthesis method `diffusion`: class-conditional diffusion images, whole or locally regenerated.

Backends (`synthesize.diffusion.backend`):
- `unet` (default): the class-conditional UNet that stage `train_generator@diffusion` trained on
  train-split real images (models/generators/diffusion), sampled with a fast solver (DDIM or
  DPM-Solver++) in batches.
  `mode: full` makes images from noise (`source`/`root` empty); `mode: local` regenerates only
  masked regions of a real train image of the same class, RePaint-style, and then restores every
  pixel outside the mask byte for byte (`source`/`root` = that image).
- `sd` (`sd_inpaint` = `sd` with `sd.mode: inpaint`): a Stable Diffusion pipeline loaded from a
  local folder (optional LoRA, e.g. the one stage train_generator@sd_lora trains), prompted from
  per-image attributes, in `sd.mode` inpaint, img2img or text2img (see rebalance/synth/diffusion_sd.py).

Generated images are made at the model's resolution and upsampled (bicubic) to the size of the
dataset's train images. Every image is determined by its seed
`ctx.seed(class, "diffusion", index)`, the checkpoint hash and the sampler settings,
all recorded in the manifest row's `seed` and `detail`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from rebalance.core import device
from rebalance.core.code import code_hash, versions
from rebalance.core.errors import RebalanceError
from rebalance.core.images import load_array, save_png
from rebalance.core.progress import progress
from rebalance.synth import diffusion_core as core, provenance, sources as source_plan
from rebalance.synth.base import Context, output_path, output_size as size_for, synthetic_row
from rebalance.synth.inpaint import blob_mask, compose, downsample_mask, resize

if TYPE_CHECKING:
    from rebalance.config.synth import Diffusion

METHOD = "diffusion"
LIBRARIES = ("torch", "diffusers", "numpy", "pillow")  # their numerics shape an image


def evaluations_per_image(cfg: Diffusion) -> int:
    """UNet evaluations per generated image (guidance doubles each step's batch; img2img runs
    only the last `strength` share of the steps)."""
    steps = cfg.steps
    if cfg.mode == "img2img":
        steps = max(1, round(steps * cfg.strength))
    return steps * (2 if cfg.guidance != 1.0 else 1)


class DiffusionSampler:
    """The diffusion method for one run: the model (or SD pipeline), loaded on first use, and the
    per-class source images of local mode."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.cfg = ctx.params.synthesize.diffusion
        self.classes = ctx.params.dataset.classes
        self._sources: dict[str, pd.DataFrame] = {}
        self.runtime = device.runtime(ctx.params.compute)
        self.is_sd = self.cfg.backend in ("sd", "sd_inpaint")  # a local Stable Diffusion folder
        self.generator = self._check_generator()

    def _check_generator(self) -> dict[str, Any]:
        """Refuse a model that saw val/test images (or an external one, unless allowed)."""
        held_out = self.ctx.held_out if self.ctx.held_out is not None else pd.DataFrame(columns=["sha256"])
        allow = self.ctx.params.synthesize.allow_external_model
        if self.cfg.backend == "unet":
            self.model  # noqa: B018 - a clear error first when the model was never trained
            return provenance.check_generator(self.cfg.model_dir, held_out, allow)
        sd = self.cfg.sd
        where = sd.model_dir or "(synthesize.diffusion.sd.model_dir)"
        found = provenance.check_generator(where, held_out, allow)
        if sd.lora:
            lora = Path(sd.lora)
            found["lora"] = provenance.check_generator(
                lora if lora.is_dir() else lora.parent, held_out, allow
            )
        return found

    @functools.cached_property
    def model(self):
        """(unet, scheduler config, checkpoint hash) of the trained class-conditional UNet."""
        folder = Path(self.cfg.model_dir)
        if not (folder / core.WEIGHTS).exists():
            raise RebalanceError(
                f"{folder}: no trained diffusion model; run `dvc repro train_generator@diffusion` "
                "(or set synthesize.diffusion.model_dir)"
            )
        unet, config = core.load(folder)
        return unet, config, core.checkpoint_hash(folder)

    @functools.cached_property
    def output_size(self) -> int:
        """Side of the generated images: synthesize.diffusion.output_size, else dataset.image_size,
        else the median longer side of the train images (mixed sizes: one square size)."""
        return size_for(self.ctx, self.cfg.output_size)

    @functools.cached_property
    def description(self) -> dict[str, Any]:
        """What determines an image besides its seed (goes into `detail` and the cache key)."""
        cfg = self.cfg
        if self.is_sd:
            from rebalance.synth import diffusion_sd

            return {
                "backend": "sd",
                "mode": diffusion_sd.mode(cfg),
                **({"mask": cfg.mask.model_dump()} if diffusion_sd.mode(cfg) == "inpaint" else {}),
                **diffusion_sd.describe(cfg.sd, diffusion_sd.mode(cfg)),
                "generator": self.generator,
            }
        return {
            "backend": "unet",
            "checkpoint": self.model[2],
            "mode": cfg.mode,
            "scheduler": cfg.scheduler,
            "steps": cfg.steps,
            "guidance": cfg.guidance,
            "unet_evals": evaluations_per_image(cfg),
            "generator": self.generator,
            **({"mask": cfg.mask.model_dump()} if cfg.mode == "local" else {}),
            **({"strength": cfg.strength} if cfg.mode == "img2img" else {}),
        }

    def sources(self, label: str) -> pd.DataFrame:
        """Train real images of `label` clustered (KMeans on colour/texture) and in spread order
        over the clusters (rebalance/synth/sources.py); index i uses entry i mod n."""
        if label not in self._sources:
            train = self.ctx.train_real
            found = train[train.label == label]
            if found.empty:
                raise RebalanceError(
                    f"diffusion: mode {self.cfg.mode} needs train images of {label!r} and there are none; "
                    "use synthesize.diffusion.mode: full"
                )
            seed = self.ctx.seed(label, METHOD)
            self._sources[label] = source_plan.plan(
                found, self.ctx.raw_dir, self.cfg.clusters, seed, spread=self.cfg.spread,
                fit=self.ctx.params.dataset.fit,
            )  # fmt: skip
        return self._sources[label]

    @property
    def block_size(self) -> int:
        """Images sampled together (UNet: a batch of consecutive indices; SD: one at a time): how
        synthesis is shared out among processes (rebalance/core/ranks.py)."""
        return 1 if self.is_sd else self.cfg.batch_size

    def cache_key(self, label: str, index: int) -> str:
        """Everything that determines image `index` of `label`: reuse an existing file iff it matches.

        The checkpoint hash (unet) or pipeline fingerprint (sd_inpaint), sampler settings, seed,
        output size, the index's batch block, in local mode the source image's checksum, for
        sd_inpaint the image's prompt, and a hash of this code and the versions of the libraries.
        """
        cfg = self.cfg
        key = {
            "code": code_hash(__name__),  # this module and every project module it imports
            "versions": versions(*LIBRARIES, *(("transformers", "peft") if self.is_sd else ())),
            "label": label,
            "seed": self.ctx.seed(label, METHOD, index),
            "size": self.output_size,
            "block": [index // cfg.batch_size, cfg.batch_size],
            **self.description,
        }
        if self.is_sd or cfg.mode in ("local", "img2img"):
            src = self.sources(label).iloc[index % len(self.sources(label))]
            key["source"] = [src.path, src.get("sha256", "")]
        if self.is_sd:
            from rebalance.synth import diffusion_sd

            key["prompt"] = diffusion_sd.prompt_of(self, label, src)
        return json.dumps(key, sort_keys=True)

    def generate(self, label: str, indices: list[int]) -> list[dict[str, str]]:
        if self.is_sd:
            from rebalance.synth import diffusion_sd

            return diffusion_sd.generate(self, label, indices)
        return self._generate_unet(label, indices)

    def _generate_unet(self, label: str, indices: list[int]) -> list[dict[str, str]]:
        ctx, cfg, classes = self.ctx, self.cfg, self.classes
        unet, config, _ = self.model
        if unet.config.num_class_embeds - 1 != len(classes):
            raise RebalanceError(
                f"{cfg.model_dir}: model has {unet.config.num_class_embeds - 1} classes but "
                f"dataset.classes lists {len(classes)}; retrain it with `dvc repro train_generator@diffusion`"
            )
        res = unet.config.sample_size
        size = self.output_size
        local = cfg.mode == "local"
        img2img = cfg.mode == "img2img"
        from_source = local or img2img  # each image starts from a train image of the class
        sources = self.sources(label) if from_source else None
        detail = self.description
        rows = []
        # Fixed blocks of consecutive indices, so an image's batch never depends on how many are asked.
        blocks: dict[int, list[int]] = {}
        for index in indices:
            blocks.setdefault(index // cfg.batch_size, []).append(index)
        for block in progress(blocks.values(), f"diffusion {label}", total=len(blocks), unit="batch"):
            seeds = [self.ctx.seed(label, METHOD, i) for i in block]
            known = masks = start = None
            if from_source:
                srcs = [sources.iloc[i % len(sources)] for i in block]
                originals = [load_array(ctx.raw_dir / s.path, size, ctx.params.dataset.fit) for s in srcs]
            if img2img:
                start = torch.from_numpy(np.stack([resize(o, res) for o in originals]))
            if local:
                full_masks = [
                    blob_mask(np.random.default_rng(s), size, cfg.mask.blobs, cfg.mask.fraction)
                    for s in seeds
                ]
                known = torch.from_numpy(np.stack([resize(o, res) for o in originals]))
                masks = torch.from_numpy(np.stack([downsample_mask(m, res) for m in full_masks]))
            scheduler = core.sampler(config, cfg.scheduler)
            out = core.sample(
                unet,
                scheduler,
                [classes.index(label)] * len(block),
                seeds,
                steps=cfg.steps,
                guidance=cfg.guidance,
                known=known,
                mask=masks,
                start=start,
                strength=cfg.strength,
                runtime=self.runtime,
            ).numpy()
            for j, (index, seed) in enumerate(zip(block, seeds)):
                image = resize(out[j], size)
                if local:
                    image = compose(originals[j], image, full_masks[j])
                path = output_path(METHOD, label, index)
                sha = save_png(image, ctx.out_dir / path)
                src = srcs[j] if from_source else None
                extra = {"mask_fraction": round(float(full_masks[j].mean()), 4)} if local else {}
                made = {**detail, "resolution": res, "size": size, **extra}
                rows.append(synthetic_row(path, label, METHOD, seed, sha, made, src if from_source else None))
        return rows

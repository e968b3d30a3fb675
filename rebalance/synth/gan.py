"""Synthesis method `gan`: images of a class from the class-conditional GAN of stage
train_generator@gan (synthesize.gan.model_dir: models/generators/gan by default).

Each image is made from noise (`source`/`root` empty) at the GAN's resolution and upsampled
(bicubic) to `synthesize.gan.output_size` (else dataset.image_size, else the median train image
side). An image is determined by its seed `ctx.seed(class, "gan", index)` and the checkpoint,
both in the manifest row; the model's training-set record is checked against val/test first.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd

from rebalance.core import device
from rebalance.core.code import code_hash, versions
from rebalance.core.errors import RebalanceError
from rebalance.core.images import save_png
from rebalance.core.progress import progress
from rebalance.synth import gan_core as core, provenance
from rebalance.synth.base import Context, output_path, output_size as size_for, synthetic_row
from rebalance.synth.inpaint import resize

METHOD = "gan"
LIBRARIES = ("torch", "numpy", "pillow")  # their numerics shape an image


class GanSampler:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.cfg = ctx.params.synthesize.gan
        self.classes = ctx.params.dataset.classes
        self.runtime = device.runtime(ctx.params.compute)
        held_out = ctx.held_out if ctx.held_out is not None else pd.DataFrame(columns=["sha256"])
        self.model  # noqa: B018 - a clear error first when the model was never trained
        allow = ctx.params.synthesize.allow_external_model
        self.generator_record = provenance.check_generator(self.cfg.model_dir, held_out, allow)

    @functools.cached_property
    def model(self) -> tuple[core.Generator, str]:
        """(generator, checkpoint hash)."""
        folder = Path(self.cfg.model_dir)
        if not (folder / core.WEIGHTS).exists():
            raise RebalanceError(
                f"{folder}: no trained GAN; run `dvc repro train_generator@gan` "
                "(or set synthesize.gan.model_dir)"
            )
        generator = core.load(folder)
        if generator.config["n_classes"] != len(self.classes):
            raise RebalanceError(
                f"{folder}: GAN has {generator.config['n_classes']} classes but dataset.classes lists "
                f"{len(self.classes)}; retrain it with `dvc repro train_generator@gan`"
            )
        return generator, core.checkpoint_hash(folder)

    @functools.cached_property
    def output_size(self) -> int:
        return size_for(self.ctx, self.cfg.output_size)

    @functools.cached_property
    def description(self) -> dict[str, Any]:
        return {"checkpoint": self.model[1], "resolution": self.model[0].config["resolution"],
                "size": self.output_size, "generator": self.generator_record}  # fmt: skip

    def cache_key(self, label: str, index: int) -> str:
        key = {
            "code": code_hash(__name__),
            "versions": versions(*LIBRARIES),
            "label": label,
            "seed": self.ctx.seed(label, METHOD, index),
            "block": [index // self.block_size, self.block_size],
            **self.description,
        }
        return json.dumps(key, sort_keys=True)

    @property
    def block_size(self) -> int:
        """Consecutive indices sampled as one batch (so an image's batch never depends on how many
        are asked for, or on how many processes share the work)."""
        return self.cfg.batch_size

    def generate(self, label: str, indices: list[int]) -> list[dict[str, str]]:
        generator, size = self.model[0], self.output_size
        blocks: dict[int, list[int]] = {}
        for index in indices:
            blocks.setdefault(index // self.block_size, []).append(index)
        batches = list(blocks.values())
        rows = []
        for batch in progress(batches, f"gan {label}", unit="batch"):
            seeds = [self.ctx.seed(label, METHOD, i) for i in batch]
            images = core.sample(generator, [self.classes.index(label)] * len(batch), seeds, self.runtime)
            for index, seed, image in zip(batch, seeds, images.numpy()):
                path = output_path(METHOD, label, index)
                sha = save_png(resize(image, size), self.ctx.out_dir / path)
                rows.append(synthetic_row(path, label, METHOD, seed, sha, self.description))
        return rows

"""A test-only generator plugin: each image is a real train image of its class (chosen by the
slot's seed) with seeded noise added. Options: `noise` (pixel standard deviation, default 8) and
`record` (false: give no training-set record, as a model from elsewhere)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rebalance.synth.plugins import Batch, Generator, Request


class TinyGenerator(Generator):
    block_size = 4

    def training_set(self) -> list[str] | None:
        return [] if self.options.get("record", True) else None  # it learns from no images

    def generate(self, request: Request) -> Batch:
        own = request.train[request.train.label == request.label].sort_values("path")
        images = {}
        for index, seed in zip(request.indices, request.seeds):
            rng = np.random.default_rng(seed)
            path = own.path.iloc[int(rng.integers(len(own)))]
            with Image.open(request.raw_dir / path) as im:
                base = np.asarray(im.convert("RGB"), dtype=np.float32)
            noisy = base + rng.normal(0, float(self.options.get("noise", 8)), base.shape)
            images[index] = np.clip(noisy, 0, 255).astype(np.uint8)
        detail = {"noise": self.options.get("noise", 8), "dollars_per_image": 0.001}
        return Batch(images=images, detail=detail)

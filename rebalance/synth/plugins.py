"""Generator plugins: synthesis methods that other packages install.

A package declares a generator under the entry-point group `rebalance.generators`; once it is
installed (`pip install my-generator`), `synthesize.methods` may name it like a built-in method::

    # the plugin package's pyproject.toml
    [project.entry-points."rebalance.generators"]
    my_gan = "my_generator:MyGan"     # a Generator subclass (or any callable taking the options)

The entry point gives a `Generator` class; it is built with `options` (the plugin's mapping under
`synthesize.plugins.<name>`, {} when absent). For each batch of slots of a class it receives a
`Request` (the class, the slot indices and their seeds, the real train rows it may use and where
their files are, an empty folder of its own) and returns a `Batch`: one image per slot (a slot
left out, or None, stays empty, reported as the filter's empty slots are) and a `detail` mapping
recorded in each image's manifest row (`plugin_detail`; its `dollars_per_image`, for a paid API,
becomes the row's `dollars`, which metrics/synthesis_speed.json averages).

The rest is as for the built-in methods: the seeds (`Context.seed(class, name, index)`: a slot a
reviewer or the filter rejected gets a new one), cache keys (this module's code, the plugin
distribution's version, its options, the class, the seed, the batch), the judge's filter, review
and the release gates. Provenance: `training_set()` gives the sha256 of every image the plugin's
model was trained on ([] for a generator that learnt from no images); a training image among the
real val/test images is refused, and a plugin that gives no record (None) is refused unless
`synthesize.allow_external_model: true` (the data card then says so).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rebalance.config.synth import PLUGIN_GROUP
from rebalance.core.code import code_hash
from rebalance.core.errors import RebalanceError
from rebalance.core.images import save_png
from rebalance.synth.base import Context, output_path, synthetic_row


@dataclass(frozen=True)
class Request:
    """One batch of slots of one class."""

    label: str  # the class
    indices: list[int]  # the slots (consecutive within one block of `Generator.block_size`)
    seeds: list[int]  # one per slot: the image of a slot depends on its seed (and the batch) only
    train: pd.DataFrame  # the real train rows it may use (path, label, sha256, ...); never val/test
    raw_dir: Path  # where the train rows' paths are
    out_dir: Path  # an empty scratch folder of this batch, removed afterwards


@dataclass
class Batch:
    """What a generator returns for a Request."""

    # slot index -> an HxWx3 uint8 array, a PIL image or the path of an image file; a slot left
    # out (or None) stays empty
    images: dict[int, Any]
    detail: dict[str, Any] = field(default_factory=dict)  # recorded in each image's row (JSON-able)


class Generator(ABC):
    """What the entry point of a plugin gives (a subclass; or any callable of `options` returning
    an object with these members)."""

    block_size: int = 1  # slots per Request: consecutive indices, so a slot's batch is fixed

    def __init__(self, options: dict[str, Any]):
        self.options = options

    def training_set(self) -> list[str] | None:
        """The sha256 of every image the model was trained on ([]: none); None: unknown (refused
        unless synthesize.allow_external_model)."""
        return None

    @abstractmethod
    def generate(self, request: Request) -> Batch: ...


def entry_point(name: str) -> metadata.EntryPoint:
    """The installed entry point of plugin `name` (a one-line error when none is installed)."""
    found = [ep for ep in metadata.entry_points(group=PLUGIN_GROUP) if ep.name == name]
    if not found:
        raise RebalanceError(
            f"params.yaml: synthesize.methods names {name!r}, which is no installed generator plugin "
            f"(entry points {PLUGIN_GROUP}); install its package"
        )
    return found[0]


def version(ep: metadata.EntryPoint) -> str:
    """The version of the distribution that installs entry point `ep` ("unknown" when none says)."""
    if ep.dist is not None:
        return ep.dist.version
    return "unknown"


def check_training_set(name: str, record: list[str] | None, held_out: pd.DataFrame, allow: bool) -> dict:
    """Refuse a plugin whose model saw a val/test image, or that gives no record unless `allow`;
    what the data card says about it (as provenance.check_generator for a model folder)."""
    if record is None:
        if not allow:
            raise RebalanceError(
                f"generator plugin {name!r} gives no training-set record (it may have seen val/test "
                "images); set synthesize.allow_external_model: true to use it anyway (the data card "
                "will say so)"
            )
        return {"model": f"plugin {name}", "external": True}
    leaked = held_out[held_out.sha256.isin(set(record))]
    if not leaked.empty:
        first = leaked.iloc[0]
        raise RebalanceError(
            f"generator plugin {name!r} was trained on {len(leaked)} val/test image(s), e.g. {first.path} "
            f"({first.split}); retrain it on the train split"
        )
    return {"model": f"plugin {name}", "external": False, "trained_on": len(set(record))}


class PluginMethod:
    """An installed plugin as a synthesis method (rebalance/synth/base.py Method)."""

    def __init__(self, name: str, ctx: Context):
        self.name, self.ctx = name, ctx
        ep = entry_point(name)
        self.version = version(ep)
        self.options = dict(ctx.params.synthesize.plugins.get(name, {}))
        self.generator = ep.load()(self.options)
        held_out = ctx.held_out if ctx.held_out is not None else pd.DataFrame(columns=["sha256"])
        allow = ctx.params.synthesize.allow_external_model
        self.record = check_training_set(name, self.generator.training_set(), held_out, allow)

    @property
    def block_size(self) -> int:
        return max(1, int(getattr(self.generator, "block_size", 1)))

    @functools.cached_property
    def description(self) -> dict[str, Any]:
        return {
            "plugin": self.name,
            "version": self.version,
            "options": self.options,
            "generator": self.record,
        }

    def cache_key(self, label: str, index: int) -> str:
        key = {
            "code": code_hash(__name__),
            "label": label,
            "seed": self.ctx.seed(label, self.name, index),
            "block": [index // self.block_size, self.block_size],
            **self.description,
        }
        return json.dumps(key, sort_keys=True, default=str)

    def generate(self, label: str, indices: list[int]) -> list[dict[str, str]]:
        blocks: dict[int, list[int]] = {}
        for index in indices:
            blocks.setdefault(index // self.block_size, []).append(index)
        train = self.ctx.train_real.reset_index(drop=True)
        rows = []
        for batch in blocks.values():
            seeds = [self.ctx.seed(label, self.name, i) for i in batch]
            scratch = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
            try:
                request = Request(label, list(batch), seeds, train.copy(), self.ctx.raw_dir, scratch)
                result = self.generator.generate(request)
                given = result.detail.get("dollars_per_image")
                price = {} if given is None else {"dollars": float(given)}
                for index, seed in zip(batch, seeds):
                    image = result.images.get(index)
                    if image is None:
                        continue  # the slot stays empty (metrics/filter.json reports it)
                    path = output_path(self.name, label, index)
                    sha = save_png(as_array(image), self.ctx.out_dir / path)
                    detail = self.description | {"plugin_detail": result.detail} | price
                    rows.append(synthetic_row(path, label, self.name, seed, sha, detail))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return rows


def as_array(image: Any) -> np.ndarray:
    """An HxWx3 uint8 array of an array, a PIL image or an image file's path."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            return np.asarray(im.convert("RGB"))
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array, dtype=np.uint8)

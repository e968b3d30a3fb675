"""What every synthesis method shares: the run's Context, the method interface, seeds, output
paths and the manifest row of a generated image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from rebalance.core import manifest

if TYPE_CHECKING:
    from rebalance.config.schema import Params


@dataclass
class Context:
    params: Params  # the validated params (rebalance.config.load)
    train_real: pd.DataFrame  # manifest rows of the train split's real images
    raw_dir: Path  # where train_real's paths live
    out_dir: Path  # data/synthesized (temporary while the stage runs)
    held_out: pd.DataFrame | None = None  # val/test real rows: a generator must not have seen them
    # output path -> how many of its images a reviewer rejected (rebalance/review/decisions.py)
    retries: dict[str, int] = field(default_factory=dict)

    def seed(self, *parts: object) -> int:
        """A stable seed for one image (or one shared choice): dataset name, synthesize.seed, `parts`.

        Seeds of an image slot (parts starting with class, method, index) whose images a reviewer
        rejected k times get ("retry", k) appended: the slot is regenerated with a new sub-seed."""
        retry = ()
        if len(parts) >= 3 and isinstance(parts[2], int) and self.retries:
            k = self.retries.get(output_path(str(parts[1]), str(parts[0]), parts[2]), 0)
            retry = ("retry", k) if k else ()
        return image_seed(self.params.dataset.name, self.params.synthesize.seed, *parts, *retry)


class Method(Protocol):
    def cache_key(self, label: str, index: int) -> str: ...

    def generate(self, label: str, indices: list[int]) -> list[dict[str, str]]: ...


def image_seed(*parts: object) -> int:
    """A stable 32-bit seed from named parts, e.g. (dataset, class, method, index)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def output_path(method: str, label: str, index: int) -> str:
    """Where generated image `index` of a class lives, relative to data/fused (and data/synthesized)."""
    return f"train/{label}/{method}_{label}_{index:05d}.png"


def synthetic_row(
    path: str,
    label: str,
    method: str,
    seed: int,
    sha256: str,
    detail: dict | str,
    source: object | None = None,
    cluster: object = "",
) -> dict[str, str]:
    """The manifest row of a generated train image at `path`: made from noise (`source` None:
    empty source and root) or from the real train image `source` (a train_real row: its path, its
    root and its duplicate cluster)."""
    if source is not None:
        cluster = int(source.cluster)
    return manifest.row(
        path=path, split="train", label=label, origin=method, seed=seed, sha256=sha256,
        source="" if source is None else source.path, root="" if source is None else source.root,
        cluster=cluster, detail=detail,
    )  # fmt: skip


def median_side(files: list[Path]) -> int:
    """The median of max(width, height) over image files (headers only, nothing decoded): the
    square size of generated images when neither the method nor dataset.image_size sets one."""
    from PIL import Image

    sides = []
    for f in files:
        with Image.open(f) as im:
            sides.append(max(im.size))
    return int(sorted(sides)[len(sides) // 2])


MAX_MEDIAN_SIDE = 512  # the default size's ceiling: 3000 px photos would give 27 MB PNGs of upsampled pixels


def output_size(ctx: Context, method_size: int | None) -> int:
    """Side of images a method makes from noise: its own output_size, else dataset.image_size, else
    the median side of the train images, at most MAX_MEDIAN_SIDE (a 32 px generator's image
    upsampled to a 3000 px photo's size holds no more detail, only bytes and seconds)."""
    chosen = method_size or ctx.params.dataset.image_size
    if chosen:
        return int(chosen)
    return min(MAX_MEDIAN_SIDE, median_side([ctx.raw_dir / p for p in ctx.train_real.path]))

"""Synthesis methods. Each fills part of a class's train deficit from train-split real images.

A method is a module with `generate(ctx, label, indices) -> list[manifest row]`, writing one file
per index under `ctx.out_dir / "train" / label /` (paths as they will be in data/fused).

Optional reuse hook: a method that also defines `cache_key(ctx, label, index) -> str` opts into
incremental runs. The key must change whenever anything that determines image `index` changes
(method params, source file checksum, seed, a method version string, model checksum, ...). The
synthesize stage stores it as `key` in the row's `detail` JSON and, on the next run, hard-links
the old file instead of calling `generate` for every index whose path, key and sha256 still match;
`generate` is then called with only the remaining indices. Methods without the hook regenerate all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stages.errors import RebalanceError


@dataclass
class Context:
    params: dict[str, Any]
    train_real: pd.DataFrame  # manifest rows of the train split's real images
    raw_dir: Path  # where train_real's paths live
    out_dir: Path  # data/synthesized (temporary while the stage runs)
    cache: dict[str, Any] = field(default_factory=dict)  # per-run memo a method may share across calls


def image_seed(*parts: object) -> int:
    """A stable 32-bit seed from named parts, e.g. (dataset, class, method, index)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def output_path(method: str, label: str, index: int) -> str:
    """Where generated image `index` of a class lives, relative to data/fused (and data/synthesized)."""
    return f"train/{label}/{method}_{label}_{index:05d}.png"


def get(method: str):
    """The module implementing `method`."""
    from stages.synth import diffusion, lesion_edit

    methods = {"lesion_edit": lesion_edit, "diffusion": diffusion}
    if method not in methods:
        raise RebalanceError(
            f"params.yaml: synthesize.methods names unknown method {method!r}; "
            f"available: {', '.join(sorted(methods))}"
        )
    return methods[method]

"""Synthesis methods. Each fills part of a class's train deficit from train-split real images.

A method is a module with `generate(ctx, label, indices) -> list[manifest row]`, writing one file
per index under `ctx.out_dir / "train" / label /` (paths as they will be in data/fused).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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

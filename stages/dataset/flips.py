"""Horizontal flips (stage flip), one file per call so that a process pool can spread them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from stages.core.images import load_array, save_png
from stages.dataset import duplicates

FINGERPRINTS = "fingerprints.csv"  # data/flipped/: path, sha256, pixels, phash of every flip (for fuse)


def flipped_path(fused_path: str) -> str:
    """Where the flip of `fused_path` goes: <stem>_flip.png beside it."""
    p = Path(fused_path)
    return (p.parent / f"{p.stem}_flip.png").as_posix()


def flip_file(job: tuple[Path, Path]) -> tuple[str, str, str]:
    """Mirror `src` left-right into the PNG `dst`: (file sha256, pixels sha256, phash hex).

    The fingerprint comes from the array in hand, so stage fuse's leak check need not decode it again.
    """
    src, dst = job
    mirrored = np.ascontiguousarray(load_array(src)[:, ::-1])
    sha = save_png(mirrored, dst)
    fp = duplicates.of_image(Image.fromarray(mirrored))
    return sha, fp.pixels, duplicates.phash_hex(fp.phash)

"""Horizontal flips (stage flip), one file per call so that a process pool can spread them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from stages.core.hashing import sha256_bytes
from stages.core.images import encode_png, open_rgb
from stages.dataset import duplicates

FINGERPRINTS = "fingerprints.csv"  # data/flipped/: path, sha256, pixels, phash of every flip (for fuse)


def flipped_path(fused_path: str) -> str:
    """Where the flip of `fused_path` goes: <stem>_flip.png beside it."""
    p = Path(fused_path)
    return (p.parent / f"{p.stem}_flip.png").as_posix()


def flip_file(job: tuple[Path, Path]) -> tuple[str, str, str]:
    """Mirror `src` left-right into the PNG `dst`: (file sha256, pixels sha256, phash hex).

    `dst` lies in stage flip's temporary output folder (renamed into place when every flip is
    written). The fingerprint comes from the image in hand, so stage fuse's leak check need not
    decode it again.
    """
    src, dst = job
    mirrored = open_rgb(src).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    data = encode_png(mirrored)
    dst.write_bytes(data)
    fp = duplicates.of_image(mirrored)
    return sha256_bytes(data), fp.pixels, duplicates.phash_hex(fp.phash)

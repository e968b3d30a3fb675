"""Horizontal flips (stage flip), one file per call so that a process pool can spread them.

Stage flip packs the flips into tar shards (data/flipped/shards/flip-*.tar, rebalance/dataset/shards.py)
instead of one file each: stage fuse is their only per-file home (`fuse.format: files`), so DVC
tracks each flip once, not in two directory outputs."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from rebalance.core.hashing import sha256_bytes
from rebalance.core.images import encode_jpeg, encode_png, open_rgb
from rebalance.dataset import duplicates
from rebalance.dataset.shards import Packed

FINGERPRINTS = "fingerprints.csv"  # data/flipped/: path, sha256, pixels, phash of every flip (for fuse)


JPEG = (".jpg", ".jpeg")


def as_jpeg(src: str | Path | Packed, fmt: str) -> bool:
    """Whether the flip of `src` is a JPEG: flip.format `source` and a JPEG source file."""
    name = src if isinstance(src, (str, Path)) else src.path
    return fmt == "source" and Path(name).suffix.lower() in JPEG


def flipped_path(fused_path: str, jpeg: bool = False) -> str:
    """Where the flip of `fused_path` goes: <stem>_flip.png (or .jpg) beside it."""
    p = Path(fused_path)
    return (p.parent / f"{p.stem}_flip{'.jpg' if jpeg else '.png'}").as_posix()


def flip_file(src: Path | Packed, fmt: str = "png", quality: int = 95) -> tuple[bytes, str, str, str]:
    """`src` (a file, or a synthetic image packed in data/synthesized's tars) mirrored left-right:
    (its PNG bytes, or JPEG bytes as `as_jpeg` says, their sha256, pixels sha256, phash hex).

    The fingerprint is of the image the bytes decode to (a JPEG's is decoded again), so stage
    fuse's leak check need not decode it.
    """
    mirrored = open_rgb(src).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if as_jpeg(src, fmt):
        data = encode_jpeg(mirrored, quality)
        mirrored = open_rgb(Path("flip.jpg"), data)
    else:
        data = encode_png(mirrored)
    fp = duplicates.of_image(mirrored)
    return data, sha256_bytes(data), fp.pixels, duplicates.phash_hex(fp.phash)

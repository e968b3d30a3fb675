"""The one image IO helper: safe open, resize, deterministic atomic save, checksums."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stages.core.atomic import write_bytes
from stages.core.errors import RebalanceError
from stages.core.hashing import sha256_bytes

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MAX_PIXELS = 64_000_000  # refuse decompression bombs with a clear message


class BadImageError(RebalanceError):
    """An image file that cannot be used."""


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image as RGB, EXIF orientation applied, fully decoded (so corruption shows here)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise BadImageError(
                        f"{path}: image is {im.width}x{im.height}, over {MAX_PIXELS} pixels; "
                        "downscale it or remove it from the dataset"
                    )
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "P"):
                    im = im.convert("RGBA")
                    background = Image.new("RGBA", im.size, (0, 0, 0, 255))
                    im = Image.alpha_composite(background, im)
                return im.convert("RGB")
    except BadImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Warning) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadImageError(f"{path}: cannot read image ({reason}); replace or remove the file") from None


def load_array(path: str | Path, size: int | None = None) -> np.ndarray:
    """Load an image as an HxWx3 uint8 array, optionally resized to size x size."""
    im = open_rgb(path)
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def load_stack(folder: str | Path, names, size: int | None) -> np.ndarray:
    """Images `folder/name` as one N x H x W x 3 uint8 array (resized to size x size when given)."""
    if len(names) == 0:
        return np.zeros((0, size or 0, size or 0, 3), np.uint8)
    return np.stack([load_array(Path(folder) / n, size) for n in names])


def load_thumbnail(path: str | Path, size: int) -> np.ndarray:
    """A quick approximate size x size RGB array (JPEG decoded at reduced scale), for statistics."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadImageError(f"{path}: cannot read image ({err}); replace or remove the file") from None


def encode_png(array: np.ndarray) -> bytes:
    """Encode an HxWx3 uint8 array as PNG, byte-for-byte deterministic (no metadata)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB").save(
        buf, format="PNG", compress_level=6
    )
    return buf.getvalue()


def save_png(array: np.ndarray, path: str | Path) -> str:
    """Atomically save an array as PNG; return the sha256 of the written bytes."""
    data = encode_png(array)
    write_bytes(path, data)
    return sha256_bytes(data)


def save_jpeg(array: np.ndarray, path: str | Path, quality: int = 92) -> str:
    """Atomically save an array as JPEG (deterministic for a given libjpeg); return sha256."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB").save(
        buf, format="JPEG", quality=quality
    )
    data = buf.getvalue()
    write_bytes(path, data)
    return sha256_bytes(data)

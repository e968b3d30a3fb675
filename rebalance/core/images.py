"""The one image IO helper: safe open, resize, deterministic atomic save, checksums.

16-bit and float images (X-rays: PNG/TIFF in PIL modes I;16, I;16B, I, F) are windowed to 8 bit
(`window_8bit`) instead of being clipped to white: `percentile` maps the 0.5th..99.5th percentile
of the image's values linearly to 0..255, `minmax` its full range. Stage raw sets the mode from
`raw.window` (`set_window`) and writes such files to data/raw as 8-bit PNGs, so
every later stage reads 8-bit images.

DICOM files (`.dcm`, `.dicom`, or any file with the DICM preamble) are decoded by
rebalance/core/dicom.py and, like 16-bit images, written to data/raw as 8-bit PNGs.

A stage that needs one square size (the classifier, assess, diffusion training) brings each
image to it with `dataset.fit`, which it passes in: `stretch` resizes (aspect ratio lost), `crop` cuts the
centred largest square first, `pad` centres the image on a black square first (nothing lost).
Square images give the same pixels under all three.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rebalance.core.atomic import write_bytes
from rebalance.core.errors import MAX_PIXELS, BadImageError
from rebalance.core.hashing import sha256_bytes
from rebalance.core.window import window_8bit


class Packed(Protocol):
    """An image kept inside a tar, as rebalance.dataset.shards.Packed gives it: its manifest path
    and its bytes."""

    path: str

    def read_bytes(self) -> bytes: ...


IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".dcm", ".dicom"}
DICOM_EXTENSIONS = {".dcm", ".dicom"}
FITS = ("stretch", "crop", "pad")  # dataset.fit


NOT_AN_IMAGE = f"not an image file (file types read: {' '.join(sorted(IMAGE_EXTENSIONS))})"


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_dicom(path: str | Path) -> bool:
    """A DICOM file: by extension, by the `DICM` marker after the 128-byte preamble, or, for a file
    without an extension, by a first element of group 0008 (a data set without the file meta header)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return _is_dicom_head(path, head)


def _is_dicom_head(path: Path, head: bytes) -> bool:
    """The DICM marker, or a headerless data set in a file named without an image extension
    (`IM0001`, or by a UID such as `1.2.840.113619.2.55`)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    from rebalance.core.dicom import looks_headerless

    bare = not path.suffix or path.suffix[1:].isdigit()
    return bare and looks_headerless(head)


def is_high_depth(im: Image.Image) -> bool:
    """More than 8 bits per pixel of one channel (PIL modes I;16*, I, F): must be windowed."""
    return im.mode in ("I", "F") or im.mode.startswith("I;16")


def _decoded(
    path: Path,
    mode: str | None = None,
    data: bytes | None = None,
    reduce_to: int | None = None,
    frame: int | str = 0,
) -> tuple[Image.Image, bool]:
    """(the image as RGB or L, fully decoded, EXIF orientation applied; whether it was windowed).
    `data`: the file's bytes (a sample of a shard), `path` then only names it. `reduce_to`: a JPEG
    may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) while both sides stay at least
    that many pixels: ~5x faster for a 1000 px photograph brought to 64 px. `frame`: the frame of a
    multi-frame DICOM file (raw.dicom_frame)."""
    dicom_data = data is not None and (path.suffix.lower() in DICOM_EXTENSIONS or _is_dicom_head(path, data))
    if dicom_data or (data is None and is_dicom(path)):
        from rebalance.core import dicom

        return dicom.decode(path, mode, data=data, frame=frame), True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise BadImageError(
                        path,
                        f"image is {im.width}x{im.height}, over {MAX_PIXELS:,} pixels",
                        "downscale it or remove it from the dataset",
                    )
                if reduce_to and im.format == "JPEG":
                    im.draft(None, (reduce_to, reduce_to))
                im = ImageOps.exif_transpose(im)
                if is_high_depth(im):
                    return Image.fromarray(window_8bit(np.asarray(im), mode), "L"), True
                if im.mode in ("RGBA", "LA", "P"):
                    im = im.convert("RGBA")
                    background = Image.new("RGBA", im.size, (0, 0, 0, 255))
                    im = Image.alpha_composite(background, im)
                return im.convert("RGB"), False
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        size = re.search(r"\((\d+) pixels\)", str(err))
        what = f"{int(size.group(1)):,} pixels" if size else "too many pixels"
        raise BadImageError(
            path,
            f"image declares {what}, over the limit of {MAX_PIXELS:,} (a decompression bomb?)",
            "downscale it or remove it from the dataset",
        ) from None
    except Exception as err:  # any decoder error (PIL raises many types): the file is unusable
        if data == b"" or (data is None and path.is_file() and path.stat().st_size == 0):
            raise BadImageError(path, "empty file (0 bytes)") from None
        if isinstance(err, UnidentifiedImageError):  # its text names the file object, not the file
            raise BadImageError(path, "cannot read image (not a format PIL can identify)") from None
        text = str(err).splitlines()[0] if str(err).strip() else ""
        reason = f"{type(err).__name__}: {text}" if text and not isinstance(err, OSError) else text
        raise BadImageError(path, f"cannot read image ({reason or type(err).__name__})") from None


def open_rgb(
    path: str | Path | Packed, data: bytes | None = None, reduce_to: int | None = None
) -> Image.Image:
    """Open an image as RGB, EXIF orientation applied, fully decoded (so corruption shows here).

    16-bit and float images are windowed to 8 bit (`set_window`); every decoder error, a
    decompression bomb included, is a BadImageError. `data`: the bytes of the file `path` names.
    `path` may also be a sample packed in a tar (rebalance.dataset.shards.Packed: a flip, a
    synthetic image), read by its own read_bytes(). `reduce_to`: a JPEG may be decoded at reduced
    scale while both sides stay >= that (for a caller that resizes to that size anyway).
    """
    if not isinstance(path, (str, Path)):  # a packed sample
        path, data = path.path, path.read_bytes()
    im, _ = _decoded(Path(path), data=data, reduce_to=reduce_to)
    return im.convert("RGB")


def decode(
    path: str | Path, mode: str | None = None, data: bytes | None = None, frame: int | str = 0
) -> tuple[Image.Image, bool]:
    """(the image fully decoded, EXIF orientation applied: RGB, or L when a 16-bit or float image
    was windowed to 8 bit by `mode` (default: raw.window); whether it was). A BadImageError when
    it cannot be used. `data`: the file's bytes, already read; `frame`: a multi-frame DICOM
    file's frame (raw.dicom_frame)."""
    return _decoded(Path(path), mode, data=data, frame=frame)


def fit_square(im: Image.Image, size: int, fit: str) -> Image.Image:
    """`im` as size x size by the fit policy `fit` (dataset.fit, see the module doc)."""
    w, h = im.size
    if fit == "crop" and w != h:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
    elif fit == "pad" and w != h:
        side = max(w, h)
        square = Image.new(im.mode, (side, side))
        square.paste(im, ((side - w) // 2, (side - h) // 2))
        im = square
    elif fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; one of {', '.join(FITS)}")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return im


def load_array(
    path: str | Path, size: int | None = None, fit: str | None = None, data: bytes | None = None
) -> np.ndarray:
    """Load an image as an HxWx3 uint8 array; with `size`, brought to size x size by `fit`
    (dataset.fit; required with a size). `data`: the bytes of the file `path` names (a shard's sample)."""
    if size is not None and fit is None:
        raise TypeError("load_array: a size needs a fit (dataset.fit: stretch, crop or pad)")
    im = open_rgb(path, data, reduce_to=size)  # a JPEG decoded at reduced scale when far larger
    if size is not None:
        im = fit_square(im, size, fit)
    return np.array(im, dtype=np.uint8)  # a writable copy (torch.from_numpy needs one)


def load_stack(folder: str | Path, names, size: int | None, fit: str | None = None) -> np.ndarray:
    """Images `folder/name` as one N x H x W x 3 uint8 array (brought to size x size by `fit`
    when a size is given)."""
    if len(names) == 0:
        return np.zeros((0, size or 0, size or 0, 3), np.uint8)
    return np.stack([load_array(Path(folder) / n, size, fit) for n in names])


def encode_array_png(array: np.ndarray) -> bytes:
    """An HxW (grey, kept grey) or HxWx3 uint8 array as deterministic PNG bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array, "L" if array.ndim == 2 else "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_png(image: np.ndarray | Image.Image) -> bytes:
    """Encode an HxWx3 uint8 array (or an image) as PNG, byte-for-byte deterministic (no metadata)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_png(array: np.ndarray, path: str | Path) -> str:
    """Atomically save an array as PNG; return the sha256 of the written bytes."""
    data = encode_png(array)
    write_bytes(path, data)
    return sha256_bytes(data)


def encode_jpeg(image: np.ndarray | Image.Image, quality: int = 92) -> bytes:
    """Encode an HxWx3 uint8 array (or an RGB image) as JPEG (deterministic for a given libjpeg)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def save_jpeg(array: np.ndarray, path: str | Path, quality: int = 92) -> str:
    """Atomically save an array as JPEG; return sha256."""
    data = encode_jpeg(array, quality)
    write_bytes(path, data)
    return sha256_bytes(data)

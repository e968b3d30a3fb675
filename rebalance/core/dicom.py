"""DICOM decoding (pydicom) to an 8-bit image, as stage raw ingests it.

DICOM files (`.dcm`, `.dicom`, any file with the DICM preamble, or an extension-less file that
starts with a group-0008 element, as old exports without the file meta header do) are read with
pydicom, headerless files included (`force=True`, the transfer syntax taken from how the data set
itself is encoded). Compressed pixel data is decoded by pydicom's plugins, installed with the
project: pylibjpeg-libjpeg (JPEG baseline, extended and lossless; JPEG-LS), pylibjpeg-openjpeg
(JPEG 2000, HTJ2K), pylibjpeg-rle and pydicom itself (RLE, deflate).

Grey images: the modality LUT (rescale slope/intercept) is applied, then the file's own VOI window
(WindowCenter/WindowWidth or a VOI LUT, as a viewer shows it) when it has one, else `raw.window`;
MONOCHROME1 is inverted so that bone stays white. Colour images come as RGB (pydicom converts
YBR). A multi-frame file gives one frame, `raw.dicom_frame`: an index (0 the first, -1 the last)
or `middle`. They too are written to data/raw as 8-bit PNGs. Any file that cannot be used (no
pixel data, a syntax no installed plugin decodes, a malformed element, a decoder's error) is a
BadImageError (a reported skip) naming the reason and its fix.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from rebalance.core.errors import MAX_PIXELS, BadImageError
from rebalance.core.window import window_8bit, window_8bit_rgb

FRAME_CHOICES = "an index (0 the first frame, -1 the last) or `middle`"

# which installed plugin decodes a compressed transfer syntax (the skip reason names it)
_PLUGINS = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",  # RLE lossless (pydicom decodes it too)
}


def looks_headerless(head: bytes) -> bool:
    """The first bytes of a DICOM data set written without preamble and file meta: a group-0008
    element (little endian), as such files start with (0008,0005) or (0008,0008), ..."""
    return len(head) >= 8 and head[:2] == b"\x08\x00" and head[3] == 0


def _first(value):
    """A multi-valued DICOM element's first value (WindowCenter may list several windows)."""
    from pydicom.multival import MultiValue

    return value[0] if isinstance(value, MultiValue) else value


def _syntax(ds) -> str:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return "" if uid is None else str(uid)


def _set_syntax_from_encoding(ds) -> None:
    """A headerless data set has no TransferSyntaxUID: take it from how the data set was encoded."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if _syntax(ds):
        return
    implicit, little = ds.original_encoding
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def _frame_index(ds, path: Path, frame: int | str) -> int | None:
    """Which frame to decode (None: a single-frame file). A NumberOfFrames that is no whole
    number is a BadImageError."""
    raw = ds.get("NumberOfFrames", None)
    if raw is None or str(raw).strip() == "":
        return None
    try:
        frames = int(str(raw).strip())
    except ValueError:
        raise BadImageError(
            path, f"NumberOfFrames is {str(raw)!r}, not a whole number (a malformed header)",
            "fix the element (e.g. dcmodify) or remove the file",
        ) from None  # fmt: skip
    if frames <= 1:
        return None
    index = frames // 2 if frame == "middle" else int(frame)
    if not -frames <= index < frames:
        raise BadImageError(
            path, f"multi-frame DICOM has {frames} frames, raw.dicom_frame is {frame}",
            f"set raw.dicom_frame to {FRAME_CHOICES} within the file's frames",
        )  # fmt: skip
    return index % frames


def _installed(distribution: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def _pixels(ds, path: Path, index: int | None) -> np.ndarray:
    """The decoded pixel values of one frame (colour as RGB)."""
    if index is not None:
        ds.pixel_array_options(index=index)
    try:
        return ds.pixel_array
    except Exception as err:
        uid = _syntax(ds)
        what = getattr(ds.file_meta.TransferSyntaxUID, "name", uid) if uid else "no transfer syntax"
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]  # the plugin's own words
        plugin = _PLUGINS.get(uid)
        if plugin and not _installed(plugin):
            needs = (
                f"install its decoder (pip install {plugin}) or convert the file to an uncompressed syntax"
            )
        elif plugin:  # (a skip report keeps only the reason: the fix goes in it)
            needs = (
                f"{plugin} is installed, so the data is damaged or a variant it cannot read: convert the file"
            )
        else:
            needs = (
                "no installed plugin decodes it: convert the file to an uncompressed syntax (gdcmconv --raw)"
            )
        raise BadImageError(
            path, f"cannot decode DICOM pixel data ({what}: {text}); {needs}", "or remove the file"
        ) from None


def _to_image(ds, values: np.ndarray, mode: str | None) -> Image.Image:
    """Decoded values as an 8-bit image: RGB as it is (deeper ones windowed), grey through the
    modality LUT and the file's window (module doc)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":  # indices into the file's colour table
        from pydicom.pixels import apply_color_lut

        values = apply_color_lut(values, ds)
    if values.ndim == 3:  # colour: pydicom gives RGB (YBR converted)
        return Image.fromarray(np.ascontiguousarray(window_8bit_rgb(values, mode)), "RGB")
    values = apply_modality_lut(values, ds)
    if "WindowCenter" in ds and "WindowWidth" in ds:  # the file's window (the first, if several)
        center, width = (float(_first(ds.WindowCenter)), float(_first(ds.WindowWidth)))
        lo, hi = center - width / 2, center + width / 2
        gray = np.clip(np.rint((values - lo) * (255.0 / max(hi - lo, 1e-6))), 0, 255).astype(np.uint8)
    elif "VOILUTSequence" in ds:  # a lookup table: its output spans the stored bit depth
        bits = int(ds.get("BitsStored", 16))
        gray = np.clip(apply_voi_lut(values, ds) * (255.0 / (2**bits - 1)), 0, 255).astype(np.uint8)
    else:
        gray = window_8bit(values, mode)
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return Image.fromarray(np.ascontiguousarray(gray), "L")


def decode(
    path: Path, mode: str | None = None, data: bytes | None = None, frame: int | str = 0
) -> Image.Image:
    """A DICOM file as an 8-bit L (or RGB) image (see the module doc): one frame of a multi-frame
    file (`frame`). `data`: the file's bytes (a shard's sample), `path` then only names it. Every
    failure is a BadImageError, whatever raised it."""
    import pydicom

    try:
        with warnings.catch_warnings():  # invalid values (an IS of '1A') are read with a warning
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path if data is None else io.BytesIO(data), force=True)
            if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
                raise BadImageError(path, "DICOM file without pixel data (a report, or not a DICOM file)")
            _set_syntax_from_encoding(ds)
            rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
            if rows * cols > MAX_PIXELS:
                raise BadImageError(
                    path, f"image is {cols}x{rows}, over {MAX_PIXELS:,} pixels", "downscale it or remove it"
                )
            return _to_image(ds, _pixels(ds, path, _frame_index(ds, path, frame)), mode)
    except BadImageError:
        raise
    except MemoryError:
        raise
    except Exception as err:  # pydicom, numpy or a plugin: this one file is unusable, not the run
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        reason = f"{type(err).__name__}: {text}" if text else type(err).__name__
        raise BadImageError(path, f"cannot read DICOM ({reason})") from None

"""DICOM decoding (pydicom) to an 8-bit image, as stage raw ingests it.

DICOM files (`.dcm`, `.dicom`, or any file with the DICM preamble) are read with pydicom: the
modality LUT (rescale slope/intercept) is applied, then the file's own VOI window
(WindowCenter/WindowWidth or a VOI LUT, as a viewer shows it) when it has one, else `raw.window`;
MONOCHROME1 is inverted so that bone stays white. They too are written to data/raw as 8-bit PNGs.
Multi-frame files, files without pixel data and compressed transfer syntaxes without an installed
decoder are BadImageErrors (reported skips), each with its fix.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from stages.core.images import MAX_PIXELS, BadImageError, window_8bit, window_8bit_rgb


def _first(value):
    """A multi-valued DICOM element's first value (WindowCenter may list several windows)."""
    from pydicom.multival import MultiValue

    return value[0] if isinstance(value, MultiValue) else value


def decode(path: Path, mode: str | None = None, data: bytes | None = None) -> Image.Image:
    """A DICOM file's first frame as an 8-bit L (or RGB) image (see the module doc); `data`: the
    file's bytes (a shard's sample), `path` then only names it."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path if data is None else io.BytesIO(data))
    except Exception as err:
        raise BadImageError(
            path, f"cannot read DICOM ({str(err).splitlines()[0] or type(err).__name__})"
        ) from None
    if "PixelData" not in ds:
        raise BadImageError(path, "DICOM file without pixel data (a report or structured document?)")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows * cols > MAX_PIXELS:
        raise BadImageError(
            path, f"image is {cols}x{rows}, over {MAX_PIXELS:,} pixels", "downscale it or remove it"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise BadImageError(
            path, f"multi-frame DICOM ({frames} frames)", "export the frame you want as its own file"
        )
    try:
        values = ds.pixel_array
    except Exception as err:  # compressed transfer syntaxes need plugins (pylibjpeg, gdcm)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        what = getattr(syntax, "name", str(syntax))
        raise BadImageError(
            path,
            f"cannot decode DICOM pixel data ({what}: {str(err).splitlines()[0]})",
            "install a decoder (pip install pylibjpeg pylibjpeg-libjpeg) or convert the file",
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if values.ndim == 3 and photometric in ("RGB", "YBR_FULL", "YBR_FULL_422"):
        if photometric != "RGB":
            from pydicom.pixels import convert_color_space

            values = convert_color_space(values, photometric, "RGB")
        return Image.fromarray(window_8bit_rgb(values, mode), "RGB")
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
    return Image.fromarray(gray, "L")

"""Writes the JPEG-lossless and JPEG-extended DICOM samples beside this file.

pydicom's plugins decode these syntaxes but nothing installed with the project encodes them, so the
two samples are made once with GDCM (`pip install python-gdcm pydicom numpy`, then run this file)
and kept here. Their pixels are `pattern(bits)` below, which tests/test_dicom.py recomputes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS, COLS = 20, 24


def pattern(bits: int) -> np.ndarray:
    """A deterministic ramp with texture, spanning most of `bits` bits."""
    y, x = np.mgrid[:ROWS, :COLS]
    top = 2**bits - 1
    return ((x * 97 + y * 211 + (x * y) % 13 * 7) % (top + 1)).astype(np.uint16 if bits > 8 else np.uint8)


def uncompressed(path: Path, values: np.ndarray, bits: int) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.1234.{bits}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "OT", ROWS, COLS
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = values.dtype.itemsize * 8, bits, bits - 1
    ds.PixelData = values.tobytes()
    ds.save_as(path, enforce_file_format=True)


def transcode(src: Path, dst: Path, syntax) -> None:
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    if not reader.Read():
        sys.exit(f"cannot read {src}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    change.SetInput(reader.GetImage())
    if not change.Change():
        sys.exit(f"cannot transcode {src}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        sys.exit(f"cannot write {dst}")


def main() -> None:
    import gdcm

    samples = [
        ("jpeg_lossless_sv1_12bit.dcm", 12, gdcm.TransferSyntax.JPEGLosslessProcess14_1),
        ("jpeg_extended_8bit.dcm", 8, gdcm.TransferSyntax.JPEGExtendedProcess2_4),
    ]
    for name, bits, syntax in samples:
        plain = HERE / f"plain_{bits}.dcm"
        uncompressed(plain, pattern(bits), bits)
        transcode(plain, HERE / name, syntax)
        plain.unlink()
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

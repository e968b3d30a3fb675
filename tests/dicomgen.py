"""DICOM files the tests write: a secondary-capture data set of given pixel values, uncompressed
(explicit VR little endian), that a test then compresses, patches or saves as it needs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def dataset(values: np.ndarray, photometric: str = "MONOCHROME2", frames: int | None = None):
    """`values` (rows x cols, rows x cols x 3, or frames x rows x cols) as a pydicom Dataset; the
    bits follow the dtype (8 or 16), photometric `MONOCHROME2` or a colour one (3 samples)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    shape = values.shape[1:] if frames else values.shape
    ds.Rows, ds.Columns = shape[0], shape[1]
    if frames:
        ds.NumberOfFrames = frames
    colour = photometric.startswith(("RGB", "YBR"))
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    bits = values.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = photometric
    ds.PixelData = np.ascontiguousarray(values).tobytes()
    return ds


def write(path: Path, ds) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def encoded(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()

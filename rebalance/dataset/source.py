"""The user's source, whatever its kind (`raw.source`): a folder of class folders, a CSV or a
MedMNIST .npz (the demo is rebalance/dataset/demo.py). One entry point for stage raw and the plan."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from rebalance.config import Params, source_kind
from rebalance.core.errors import RebalanceError
from rebalance.dataset import csv_read, csv_source, ingest, npz_source
from rebalance.dataset.metadata import SourceDataset


@dataclass
class Source:
    found: ingest.Scan  # the usable images (names in data/raw), skips, source paths, official split
    root: Path  # the folder the source paths are relative to
    metadata_csv: str | None  # the CSV of per-image metadata (a CSV source is its own), or None
    dataset: SourceDataset  # params' dataset group (a CSV source's: that CSV, its group column, raw.csv)
    extracted: bool = False  # the images are files under `root` written from an .npz (a temp folder
    # unless `out` was given), not the user's files


def read(params: Params, out: Path | None = None) -> Source:
    """Scan the source, every image decoded once to verify it. With `out` (stage raw's output
    folder) every usable image is written there by the worker that verifies it; an .npz is
    extracted there (to a temporary folder when `out` is None; the caller then reads the images
    from `root` and removes it)."""
    dataset, raw = params.dataset, params.raw
    path, processes, window = Path(raw.source), params.compute.processes, raw.window
    kind = source_kind(raw.source)
    if kind == "npz":
        folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="rebalance-npz-"))
        found = npz_source.extract(path, dataset.classes, folder, window, processes)
        return Source(found, folder, None, SourceDataset.of(dataset), extracted=True)
    if kind == "csv":
        columns = raw.csv
        found = csv_source.scan(
            path, dataset.classes, dataset.group_by, raw.on_bad_file, processes, out, window,
            columns, frame=raw.dicom_frame,
        )  # fmt: skip
        df = csv_read.read(path, dataset.group_by, columns)
        view = csv_source.dataset_view(dataset, raw.source, df, columns)
        return Source(found, path.parent, raw.source, view)
    if path.is_file():  # not a table or .npz by its name: HDF5, a zip, an image, ...
        raise RebalanceError(
            f"{path}: a file raw.source cannot read; give a folder of class folders, a .csv/.tsv/.txt "
            "table of images or a MedMNIST .npz (an archive: unpack it; ISIC 2024's HDF5: its image "
            "folder with train-metadata.csv, README 'Your own data')"
        )
    found = ingest.scan(
        path, dataset.classes, raw.on_bad_file, True, processes, out, window, frame=raw.dicom_frame
    )
    return Source(found, path, dataset.metadata, SourceDataset.of(dataset))


def files(src: Source) -> list[Path]:
    """The file of every found image, in `found.images` order (for fingerprints before ingestion)."""
    if src.extracted:
        return [src.root / name for name, _ in src.found.images]
    return [src.root / src.found.source[name] for name, _ in src.found.images]

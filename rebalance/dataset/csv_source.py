"""A CSV source: one row per image, `path,label` plus optional `split`, `group` and metadata columns.

`raw.source: data/isic/train.csv`. Paths are relative to the CSV's folder (the source folder; a
path leading out of it is refused like a symlink out of a source folder). `label` is a class name
of `dataset.classes` or, failing that, an integer index into it (ISIC's `target` 0/1 as
`classes: [benign, malignant]`); rows of other labels are reported skips. A `split` column
(train/val/test) is an official split, kept exactly; the group of an image is the column
`dataset.group_by` names, else the `group` column when there is one. Every other column is
metadata: kept in data/raw/labels.csv for prompts and grouping. The CSV is both the image list and
the metadata table (rebalance/dataset/csv_read.py reads both).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rebalance.config.schema import Csv, Dataset
from rebalance.core import images
from rebalance.core.errors import RebalanceError
from rebalance.dataset import csv_read
from rebalance.dataset.ingest import Scan
from rebalance.dataset.ingest_files import ingest_files, windowed_name
from rebalance.dataset.listing import link_problem
from rebalance.dataset.metadata import SourceDataset

LABEL = "label"
GROUP = "group"


def group_column(df: pd.DataFrame, group_by: str | None) -> str | None:
    """The column that keeps images together: dataset.group_by, else `group` when present."""
    if group_by is not None:
        return group_by
    return GROUP if GROUP in df.columns else None


def dataset_view(
    dataset: Dataset, csv_path: str, df: pd.DataFrame, columns: Csv | None = None
) -> SourceDataset:
    """`dataset` as metadata.attach needs it: the CSV as metadata, its group column as group_by,
    its column names (raw.csv) under `csv`."""
    group_by = None if dataset.group_pattern else group_column(df, dataset.group_by)  # one or other
    return SourceDataset.of(dataset, metadata=csv_path, group_by=group_by, csv=columns)


def label_of(value: str, classes: list[str], separator: str | None = None) -> str | None:
    """A row's class: its value if a class name, else classes[int(value)], else None. With a
    `separator` (raw.csv.label_separator) the one class among the cell's labels, else None."""
    if separator:
        found = classes_in(value, classes, separator)
        return found[0] if len(found) == 1 else None
    value = value.strip()
    if value in classes:
        return value
    try:
        index = int(float(value)) if value else -1
    except ValueError:
        return None
    return classes[index] if 0 <= index < len(classes) and float(value) == index else None


def classes_in(value: str, classes: list[str], separator: str) -> list[str]:
    """The classes among a multi-label cell's labels (ChestX-ray14's `Effusion|Pneumonia`), sorted."""
    return sorted({c for part in value.split(separator) if (c := label_of(part, classes))})


def scan(
    csv_path: Path,
    classes: list[str],
    group_by: str | None,
    on_bad_file: str = "skip",
    processes: int | None = None,
    copy_to: Path | None = None,
    window: str = "percentile",
    columns: Csv | None = None,
    frame: int | str = 0,
) -> Scan:
    """The usable images the CSV lists (as data/raw/<label>/<path>), the rest reported. With
    `copy_to` each usable image is written there as it is verified (ingest.ingest_files).
    `columns`: raw.csv (the CSV's names of `path` and `label`, a path format, a label separator)."""
    csv_path = Path(csv_path)
    df = csv_read.read(csv_path, group_by, columns)
    if LABEL not in df.columns:
        raise RebalanceError(
            f"{csv_path}: no `{LABEL}` column (columns: path, {', '.join(df.columns)}); "
            "add one with each image's class"
        )
    folder = csv_path.parent
    root = folder.resolve()
    result = Scan()

    def bad(rel: str, reason: str) -> None:
        if on_bad_file == "error":
            raise RebalanceError(
                f"{folder / rel}: {reason}; fix the row of {csv_path} or set raw.on_bad_file: skip"
            )
        result.skipped.append({"path": rel, "reason": reason})

    separator = columns.label_separator if columns else None  # ChestX-ray14's `Effusion|Pneumonia`
    candidates: list[tuple[str, str]] = []  # (path relative to the CSV's folder, label)
    for rel, value in zip(df.index, df[LABEL]):  # (not iterrows: 36 s for 400k rows of 10 columns)
        label = label_of(value, classes, separator)
        if label is None:
            several = classes_in(value, classes, separator) if separator else []  # (none, or two and more)
            why = csv_read.label_problem(df.loc[rel], columns)
            if not why and several:
                why = f"{len(several)} of its labels are classes ({', '.join(several)}): one class per image"
            why = why or f"label {value!r} not in dataset.classes"
            result.skipped.append({"path": rel, "reason": why})
            continue
        path = folder / rel
        if rel == ".":
            bad("(empty)", f"a row with label {value!r} has an empty path cell")
            continue
        if rel.startswith("/") or ".." in Path(rel).parts:
            bad(rel, "path leads out of the CSV's folder; give paths relative to it")
            continue
        if not path.exists() and not path.is_symlink():
            bad(rel, "file not found")
            continue
        problem = link_problem(path, root) or ("" if path.is_file() else "not a regular file")
        if problem:
            bad(rel, problem)
            continue
        if not (images.is_image_name(path) or images.is_dicom(path)):
            bad(rel, images.NOT_AN_IMAGE)
            continue
        candidates.append((rel, label))
    files = [(folder / rel, f"{label}/{rel}") for rel, label in candidates]
    checked = ingest_files(files, copy_to, window, processes, frame)
    for (rel, label), done in zip(candidates, checked):
        if done.problem:
            bad(rel, done.problem)
            continue
        name = f"{label}/{rel}"
        if done.windowed:
            name = windowed_name(name)
            result.windowed.add(name)
        result.prints[name] = done
        result.images.append((name, label))
        result.source[name] = rel
    for label in classes:
        if not any(c == label for _, c in result.images):
            first = f" (first file skipped: {result.skipped[0]['path']}: {result.skipped[0]['reason']})"
            raise RebalanceError(
                f"{csv_path}: no usable image of class {label!r}{first if result.skipped else ''}; "
                f"add rows with label {label} or remove it from dataset.classes"
            )
    result.images.sort()
    return result

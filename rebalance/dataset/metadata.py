"""Per-image metadata of a user's source (`dataset.metadata`): groups and an official split.

The CSV has a `path` column (relative to the source folder, e.g. `level0/img1.png`, or
`train/level0/img1.png` in a split layout) and any other columns. `dataset.group_by` names the
column whose value keeps images in one split (a patient id, ...); a `split` column (train, val,
test) is an official split, used as is. Every ingested image then needs a row with a value;
a missing or unknown value is a one-line error naming the file and the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rebalance.config.schema import SPLITS, Csv, Dataset, official_split
from rebalance.core.atomic import write_text
from rebalance.core.errors import RebalanceError
from rebalance.dataset.csv_read import SPLIT_COLUMN, read

__all__ = ["read", "attach", "attributes", "write_index", "read_index", "SPLIT_COLUMN", "SourceDataset"]

INDEX_COLUMNS = ["path", "label", "source", "split", "group"]  # data/raw/images.csv


class SourceDataset(Dataset):
    """The dataset group as a source gives it to `attach`: a CSV source's view (csv_source.dataset_view)
    has that CSV as `metadata`, its group column as `group_by` and its column names (raw.csv) as
    `csv`; any other source's is the group as it is, `csv` None."""

    csv: Csv | None = None

    @classmethod
    def of(cls, dataset: Dataset, **changes: Any) -> SourceDataset:
        """`dataset` with `changes` (validated as the group is)."""
        return cls.model_validate(dict(dataset) | changes)


@dataclass
class Attached:
    groups: dict[str, str] = field(default_factory=dict)  # name in data/raw -> group value
    official: dict[str, str] = field(default_factory=dict)  # name -> split (folders or `split` column)
    unmatched: list[str] = field(default_factory=list)  # CSV paths naming no ingested image


def attach(dataset: Dataset, source: dict[str, str], official: dict[str, str]) -> Attached:
    """Groups and official split per ingested image (`source`: name in data/raw -> source path).

    `official` holds the split a split-layout source folder gives; a `split` column must agree.
    `dataset`: the group, or a source's SourceDataset (a CSV source's: its own CSV and columns).
    """
    out = Attached(official=dict(official))
    if dataset.group_pattern:
        out.groups = groups_from_paths(dataset.group_pattern, source)
    if dataset.metadata is None:
        return out
    csv_path, group_by = dataset.metadata, dataset.group_by
    columns = dataset.csv if isinstance(dataset, SourceDataset) else None  # a CSV source's column names
    df = read(csv_path, group_by, columns)
    has_split = SPLIT_COLUMN in df.columns and group_by != SPLIT_COLUMN
    for name, src in sorted(source.items()):
        row = df.loc[src] if src in df.index else None
        if group_by is not None:
            value = "" if row is None else row[group_by].strip()
            if not value:
                raise RebalanceError(
                    f"{csv_path}: no `{group_by}` value for {src} (column {group_by}, dataset.group_by); "
                    "add its row or fill in the value"
                )
            out.groups[name] = value
        if has_split:
            cell = "" if row is None else row[SPLIT_COLUMN].strip()
            value = official_split(cell)
            if value is None:
                raise RebalanceError(
                    f"{csv_path}: {src}: split {cell!r} in column `{SPLIT_COLUMN}` is not one of "
                    f"{', '.join(SPLITS)}; every image needs one (or drop the column)"
                )
            if name in official and official[name] != value:
                raise RebalanceError(
                    f"{csv_path}: {src}: column `{SPLIT_COLUMN}` says {value} but the file is in the "
                    f"{official[name]}/ folder; make them agree"
                )
            out.official[name] = value
    out.unmatched = sorted(set(df.index) - set(source.values()))
    return out


def groups_from_paths(pattern: str, source: dict[str, str]) -> dict[str, str]:
    """dataset.group_pattern: each image's group read from its source path, the pattern's first
    match (its first group when it has one); an image whose path does not match has none."""
    rx = re.compile(pattern)
    groups = {}
    for name, path in source.items():
        match = rx.search(path)
        value = match.group(1 if rx.groups else 0) if match else None
        if value:
            groups[name] = value
    return groups


def attributes(
    csv_path: str | Path,
    images: list[tuple[str, str]],
    source: dict[str, str],
    columns: Csv | None = None,
) -> pd.DataFrame:
    """data/raw/labels.csv for a source with metadata: `path` (in data/raw), `label` and the CSV's
    other columns, one row per ingested image (empty values where the CSV has no row).
    `columns`: a CSV source's raw.csv."""
    df = read(csv_path, None, columns)
    df = df.drop(columns=[c for c in ("label",) if c in df.columns])
    rows = df.reindex([source[name] for name, _ in images]).fillna("").reset_index(drop=True)
    head = pd.DataFrame({"path": [n for n, _ in images], "label": [c for _, c in images]})
    return pd.concat([head, rows], axis=1)


def write_index(rows: list[dict[str, str]], path: Path) -> None:
    """data/raw/images.csv: one row per ingested image (INDEX_COLUMNS), sorted by path."""
    frame = pd.DataFrame(rows, columns=INDEX_COLUMNS).sort_values("path")
    write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def read_index(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False).sort_values("path", kind="stable")

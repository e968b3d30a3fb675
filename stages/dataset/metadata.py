"""Per-image metadata of a user's source (`dataset.metadata`): groups and an official split.

The CSV has a `path` column (relative to the source folder, e.g. `level0/img1.png`, or
`train/level0/img1.png` in a split layout) and any other columns. `dataset.group_by` names the
column whose value keeps images in one split (a patient id, ...); a `split` column (train, val,
test) is an official split, used as is. Every ingested image then needs a row with a value;
a missing or unknown value is a one-line error naming the file and the column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from stages.core.atomic import write_text
from stages.core.errors import RebalanceError
from stages.core.schema import SPLITS, official_split

SPLIT_COLUMN = "split"
INDEX_COLUMNS = ["path", "label", "source", "split", "group"]  # data/raw/images.csv


@dataclass
class Attached:
    groups: dict[str, str] = field(default_factory=dict)  # name in data/raw -> group value
    official: dict[str, str] = field(default_factory=dict)  # name -> split (folders or `split` column)
    unmatched: list[str] = field(default_factory=list)  # CSV paths naming no ingested image


FIXED_COLUMNS = ("path", "label", "split", "group")  # matched case-insensitively (`Path`, `Label`)


def _clean(path: str, folders: tuple[Path, ...] = ()) -> str:
    """A CSV's path as a relative POSIX path: backslashes and a leading ./ removed; an absolute
    path under one of `folders` (the CSV's folder) made relative to it."""
    clean = PurePosixPath(path.strip().replace("\\", "/")).as_posix().removeprefix("./")
    if clean.startswith("/"):
        for folder in folders:
            if PurePosixPath(clean).is_relative_to(folder.as_posix()):
                return PurePosixPath(clean).relative_to(folder.as_posix()).as_posix()
    return clean


def _named(df: pd.DataFrame, columns: dict[str, Any], csv_path: Path) -> pd.DataFrame:
    """`df` with raw.csv's columns renamed to `path` and `label` (a one-hot table's label columns
    read into a `label` column) and path_format applied."""
    renames = {}
    for key in ("path", "label"):
        wanted = columns[key]
        names = wanted if isinstance(wanted, list) else [wanted]
        if names == [key]:
            continue
        missing = [name for name in names if name not in df.columns]
        if missing:
            raise RebalanceError(
                f"{csv_path}: no `{missing[0]}` column (raw.csv.{key}; columns: {', '.join(df.columns)}); "
                f"fix raw.csv.{key}"
            )
        if key in df.columns:
            raise RebalanceError(
                f"{csv_path}: raw.csv.{key} names `{names[0]}` but the CSV also has a `{key}` column; "
                f"rename one or set raw.csv.{key}: {key}"
            )
        if isinstance(wanted, list):
            df = df.assign(label=[_hot(row, wanted) or "" for row in df[wanted].itertuples(index=False)])
        else:
            renames[wanted] = key
    df = df.rename(columns=renames)
    formats = columns["path_format"] if isinstance(columns["path_format"], list) else [columns["path_format"]]
    if formats != ["{}"] and "path" in df.columns:
        df["path"] = [_first_file(cell.strip(), formats, csv_path.parent) for cell in df["path"]]
    return df


def _is_one(cell: str) -> bool:
    cell = cell.strip().lower()
    try:
        return cell == "true" or float(cell) == 1
    except ValueError:
        return False


def _ones(cells, names: list[str]) -> list[str]:
    """The columns of a one-hot row holding 1."""
    return [name for name, cell in zip(names, cells) if _is_one(cell)]


def _hot(cells: tuple[str, ...], names: list[str]) -> str | None:
    """The one column of a one-hot row holding 1; None when none or several do."""
    ones = _ones(cells, names)
    return ones[0] if len(ones) == 1 else None


def label_problem(row: pd.Series, columns: dict[str, Any] | None) -> str:
    """Why a one-hot row has no class (none or several of raw.csv.label's columns hold 1), else ''."""
    if columns is None or not isinstance(columns["label"], list):
        return ""
    ones = _ones([row[name] for name in columns["label"]], columns["label"])
    if not ones:
        return "none of raw.csv.label's columns holds 1"
    if len(ones) > 1:
        return f"{len(ones)} of raw.csv.label's columns hold 1 ({', '.join(ones)}): one class per image"
    return ""


def _first_file(cell: str, formats: list[str], folder: Path) -> str:
    """The cell through the first of raw.csv.path_format naming an existing file (else the first)."""
    options = [fmt.replace("{}", cell) for fmt in formats]
    if len(options) > 1:
        for option in options:
            if (folder / option).exists():
                return option
    return options[0]


def _separator(csv_path: Path) -> str:
    """`,`, unless the first line has none but a `;` or a tab (a spreadsheet's regional export), or
    only blanks between fields (an image list such as ACNE04's `levle0_1.jpg 0 1`)."""
    with open(csv_path, encoding="utf-8-sig", errors="replace") as f:
        first = f.readline()
    for sep in (",", ";", "\t"):
        if sep in first:
            return sep
    return r"\s+" if len(first.split()) > 1 else ","


def _files(csv_path: Path, columns: dict[str, Any] | None) -> list[tuple[Path, str | None]]:
    """The tables a source reads, each with the official split of its rows: the CSV alone, or with
    raw.csv.split_files the CSV (train) and its val/test lists, relative to its folder."""
    lists = (columns or {}).get("split_files") or {}
    if not lists:
        return [(csv_path, None)]
    return [(csv_path, "train"), *((csv_path.parent / name, split) for split, name in lists.items())]


_READ: dict[tuple, pd.DataFrame] = {}  # the last CSV parsed, while unchanged (stage raw asks five times)


def read(csv_path: str | Path, group_by: str | None, columns: dict[str, Any] | None = None) -> pd.DataFrame:
    """The metadata CSV, indexed by its cleaned `path` (absolute paths inside the CSV's folder made
    relative to it); comma, semicolon, tab or blank separated; blanks around names and values ignored.
    `columns` (a CSV source's raw.csv): the CSV's own names of `path` and `label`, a `path_format`
    that makes a path cell a file path, the `header` of a file without one, and `split_files`
    (official val/test lists beside the CSV, which then lists train: read into a `split` column).
    Errors name the file and the column.
    Parsed once per process while the file's size and mtime stay the same (ISIC 2024's is 400k rows)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise RebalanceError(f"{csv_path}: metadata CSV not found; fix dataset.metadata in params.yaml")
    tables = _files(csv_path, columns)
    for path, split in tables[1:]:
        if not path.is_file():
            raise RebalanceError(
                f"{path}: {split} list not found (raw.csv.split_files.{split}); "
                f"give its path relative to {csv_path.parent}"
            )
    stats = [(str(path.absolute()), path.stat().st_mtime_ns, path.stat().st_size) for path, _ in tables]
    key = (*stats, json.dumps(columns, sort_keys=True))
    if key not in _READ:
        _READ.clear()
        _READ[key] = _parse(csv_path, tables, columns)
    df = _READ[key]
    if group_by is not None and group_by not in df.columns:
        columns_found = ", ".join(["path", *df.columns])
        raise RebalanceError(
            f"{csv_path}: dataset.group_by column `{group_by}` not found (columns: {columns_found})"
        )
    return df.copy(deep=False)


def _table(path: Path, header: list[str] | None) -> pd.DataFrame:
    """One file as text cells, blanks around names and values dropped, `Path` read as `path`."""
    try:
        sep = _separator(path)
        names = {"header": None, "names": header} if header else {}
        df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, skipinitialspace=True, **names)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RebalanceError(f"{path}: cannot read the metadata CSV ({reason})") from None
    if header and not isinstance(df.index, pd.RangeIndex):  # pandas makes the extra fields an index
        raise RebalanceError(
            f"{path}: rows have more fields than raw.csv.header names ({', '.join(header)}); "
            "name every column"
        )
    df.columns = [str(c).strip() for c in df.columns]
    named = {c.lower(): c for c in df.columns if c.lower() in FIXED_COLUMNS and c not in FIXED_COLUMNS}
    return df.rename(columns={c: low for low, c in named.items() if low not in df.columns})  # Path -> path


def _parse(csv_path: Path, tables: list[tuple[Path, str | None]], columns: dict | None) -> pd.DataFrame:
    header = (columns or {}).get("header")
    parts = []
    for path, split in tables:
        part = _table(path, header)
        if split is not None:
            if SPLIT_COLUMN in part.columns:
                raise RebalanceError(
                    f"{path}: has a `{SPLIT_COLUMN}` column and raw.csv.split_files gives the split; use one"
                )
            part[SPLIT_COLUMN] = split
        parts.append(part)
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if columns is not None:
        df = _named(df, columns, csv_path)
    if "path" not in df.columns:
        raise RebalanceError(
            f"{csv_path}: no `path` column (columns: {', '.join(df.columns)}); add one with each "
            "image's path relative to the source folder (a file without a header row: name its "
            "columns in raw.csv.header)"
        )
    folders = tuple(dict.fromkeys([csv_path.parent.absolute(), csv_path.parent.resolve()]))
    df = df.assign(path=df.path.map(lambda p: _clean(p, folders))).drop_duplicates()  # a row twice: once
    twice = df.path[df.path.duplicated()]
    if not twice.empty:
        raise RebalanceError(f"{csv_path}: {twice.iloc[0]} has rows that differ; keep one row per image")
    return df.set_index("path")


def attach(dataset: dict[str, Any], source: dict[str, str], official: dict[str, str]) -> Attached:
    """Groups and official split per ingested image (`source`: name in data/raw -> source path).

    `official` holds the split a split-layout source folder gives; a `split` column must agree.
    """
    out = Attached(official=dict(official))
    if dataset["metadata"] is None:
        return out
    csv_path, group_by = dataset["metadata"], dataset["group_by"]
    df = read(csv_path, group_by, dataset.get("csv"))  # a CSV source's column names (its view)
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


def attributes(
    csv_path: str | Path,
    images: list[tuple[str, str]],
    source: dict[str, str],
    columns: dict[str, str] | None = None,
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

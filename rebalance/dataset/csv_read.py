"""Reading a user's table of images: a CSV or an image list, one or several files, into one frame
indexed by each image's path (rebalance/dataset/metadata.py and csv_source.py use it).

Comma, semicolon, tab or blank separated; a header row or `raw.csv.header`; the table's own
column names through raw.csv (`path`, `label`, a one-hot `label` list, `path_format`); official
val/test lists beside it (`raw.csv.split_files`) read into a `split` column. A row written twice is
read once; several rows of one image that agree on label, split and group (RSNA's one row per
box) are read as its first row and counted. Parsed once per process while the files are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pandas as pd

from rebalance.config.schema import Csv
from rebalance.core.errors import RebalanceError

SPLIT_COLUMN = "split"
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


def _named(df: pd.DataFrame, columns: Csv, csv_path: Path) -> pd.DataFrame:
    """`df` with raw.csv's columns renamed to `path` and `label` (a one-hot table's label columns
    read into a `label` column) and path_format applied."""
    renames = {}
    for key in ("path", "label"):
        wanted = getattr(columns, key)
        names = wanted if isinstance(wanted, list) else [wanted]
        if names == [key] or ([n.lower() for n in names] == [key] and key in df.columns):  # `Path`: read
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
    formats = columns.path_format if isinstance(columns.path_format, list) else [columns.path_format]
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


def label_problem(row: pd.Series, columns: Csv | None) -> str:
    """Why a one-hot row has no class (none or several of raw.csv.label's columns hold 1), else ''."""
    if columns is None or not isinstance(columns.label, list):
        return ""
    ones = _ones([row[name] for name in columns.label], columns.label)
    if not ones:
        return "none of raw.csv.label's columns holds 1"
    if len(ones) > 1:
        return f"{len(ones)} of raw.csv.label's columns hold 1 ({', '.join(ones)}): one class per image"
    return ""


def _from_parent(path: str, folder: Path) -> str:
    """A path written from the CSV folder's parent (CheXpert's train.csv, in CheXpert-v1.0-small/,
    names `CheXpert-v1.0-small/train/patient00001/...`) made relative to the folder, when only that
    names a file."""
    prefix = folder.absolute().name + "/"
    if path.startswith(prefix) and not (folder / path).exists() and (folder / path[len(prefix) :]).exists():
        return path[len(prefix) :]
    return path


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


def _files(csv_path: Path, columns: Csv | None) -> list[tuple[Path, str | None]]:
    """The tables a source reads, each with the official split of its rows: the CSV alone, or with
    raw.csv.split_files the CSV (train) and its val/test lists, relative to its folder."""
    lists = columns.split_files if columns is not None else {}
    if not lists:
        return [(csv_path, None)]
    return [(csv_path, "train"), *((csv_path.parent / name, split) for split, name in lists.items())]


_READ: dict[tuple, tuple[pd.DataFrame, pd.DataFrame]] = {}  # the last table parsed, while unchanged


def read(csv_path: str | Path, group_by: str | None, columns: Csv | None = None) -> pd.DataFrame:
    """The metadata CSV, indexed by its cleaned `path` (absolute paths inside the CSV's folder made
    relative to it); comma, semicolon, tab or blank separated; blanks around names and values ignored.
    `columns` (a CSV source's raw.csv): the CSV's own names of `path` and `label`, a `path_format`
    that makes a path cell a file path, the `header` of a file without one, and `split_files`
    (official val/test lists beside the CSV, which then lists train: read into a `split` column).
    Errors name the file and the column. Parsed once per process while the files' sizes and mtimes
    stay the same (stage raw asks five times; ISIC 2024's is 400k rows)."""
    df, repeats = _cached(Path(csv_path), columns)
    if group_by is not None and group_by not in df.columns:
        columns_found = ", ".join(["path", *df.columns])
        raise RebalanceError(
            f"{csv_path}: dataset.group_by column `{group_by}` not found (columns: {columns_found})"
        )
    if group_by is not None and not repeats.empty:  # an image's later rows: the same group
        other = repeats[group_by] != df[group_by].reindex(repeats.index)
        if other.any():
            raise RebalanceError(
                f"{csv_path}: {other.index[other.argmax()]} has rows that differ in {group_by} "
                f"(dataset.group_by); keep one {group_by} per image"
            )
    return df.copy(deep=False)


def repeated(csv_path: str | Path, columns: Csv | None = None) -> int:
    """How many images have several rows in the table (`read` keeps the first row of each)."""
    return _cached(Path(csv_path), columns)[1].index.nunique()


def _cached(csv_path: Path, columns: Csv | None) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    key = (*stats, json.dumps(columns.model_dump() if columns is not None else None, sort_keys=True))
    if key not in _READ:
        _READ.clear()
        _READ[key] = _parse(csv_path, tables, columns)
    return _READ[key]


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


def _parse(
    csv_path: Path, tables: list[tuple[Path, str | None]], columns: Csv | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    header = columns.header if columns is not None else None
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
    paths = [_from_parent(_clean(p, folders), csv_path.parent) for p in df.path]
    df = df.assign(path=paths).drop_duplicates()  # a row twice: once
    again = df.path.duplicated()
    if again.any():  # several rows of one image (RSNA Pneumonia: one per box): they must agree
        rows = df[df.path.isin(df.path[again])]
        agreed = [c for c in ("label", SPLIT_COLUMN, "group") if c in df.columns]
        differ = rows.groupby("path", sort=False)[agreed].nunique().gt(1)
        if agreed and differ.any(axis=None):
            path = differ.any(axis=1).idxmax()
            what = ", ".join(c for c in agreed if differ.loc[path, c])
            raise RebalanceError(
                f"{csv_path}: {path} has rows that differ in {what}; keep one {what} per image"
            )
    return df[~again].set_index("path"), df[again].set_index("path")  # the table, later rows


def listed(csv_path: Path, columns: Csv | None = None) -> list[str]:
    """The paths a CSV lists (for stage scan); [] when it cannot be read (raw reports why)."""
    try:
        return list(read(csv_path, None, columns).index)
    except RebalanceError:
        return []

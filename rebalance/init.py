"""`rebalance init SOURCE`: inspect a source and propose the params.yaml that reads it.

A source is a folder of class folders (or `train/ val/ test/` folders of class folders), a CSV or
image list (a path column and a label column, or one 0/1 column per class), or a MedMNIST `.npz`.
Inspection counts every image and reads the headers of at most `SAMPLE` files (sizes, modes,
formats); it finds the classes and their counts, an official split (split folders, a `split`
column, val/test lists beside an image list, an `.npz`'s arrays), groups (a patient or lesion
column, or a patient in the paths) and lesion counts (ACNE04's lists).

The new params are the current params.yaml (else the repository's) with the detected keys set,
then each `--merge` overlay merged in order (`merge`: mappings merge, anything else replaces;
`synthesize.methods`, `train.variants` and `generators` are choices an overlay replaces whole,
and a per-generator variant whose method is gone goes with it). The result is validated by the
project's own loader, so a mistake is its one-line error naming the key and the fix.
"""

from __future__ import annotations

import collections
import copy
import difflib
import os
import re
import statistics
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rebalance import config
from rebalance.config import SPLITS, official_split, source_kind
from rebalance.config.schema import Csv
from rebalance.core import images
from rebalance.core.errors import RebalanceError
from rebalance.dataset import csv_read, csv_source
from rebalance.dataset.listing import walk

SAMPLE = 200  # files whose headers are read for sizes, modes and formats (every file is counted)
LEAST = 5  # images a class needs to be split (count.min_test_per_class 2: 2 val, 2 test, 1 train)
TINY_VAL = 10  # an official val with fewer images of a class is merged into train and drawn anew
# a class column by its name (lower case; blanks, _ and - dropped), the first in this order
LABEL_NAMES = (
    "label", "labels", "class", "classname", "target", "dx", "diagnosis", "findinglabels", "finding",
    "grade", "level", "category", "severity",
)  # fmt: skip
LESION_NAMES = ("lesions", "lesioncount", "lesioncounts", "nlesions", "numlesions", "numberoflesions")
GROUP_WORDS = ("patient", "subject", "lesion", "case", "group")  # a group column's name, preferred first
# a patient in a path: CheXpert's `patient00001/`, Kermany's `person12_bacteria_3.jpeg` (its normal
# images' `IM-0115-0001.jpeg` are tried only beside `person`), `subject7`
PATH_GROUPS = (r"patient\d+", r"person\d+", r"subject\d+")
KERMANY_NORMAL = r"IM-\d+"
TRAIN_WORD = re.compile(r"trainval|train_val|training|train", re.IGNORECASE)  # in a train list's name
SPLIT_WORDS = {"val": ("val", "valid", "validation"), "test": ("test", "testing")}
GENERIC = {  # words of a file or folder name that say nothing of the dataset
    "train", "trainval", "training", "test", "testing", "val", "valid", "validation", "metadata",
    "meta", "labels", "label", "ground", "truth", "groundtruth", "data", "entry", "list", "lists",
    "images", "image", "stage", "csv", "classification", "annotations", "split", "splits", "all",
}  # fmt: skip
REPLACED_WHOLE = ("synthesize.methods", "train.variants", "generators")
REPOSITORY_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


# ---- what inspection found -------------------------------------------------------------------


@dataclass
class ImageKinds:
    """Every image counted; the headers of a sample read."""

    counted: int = 0
    sampled: int = 0
    formats: collections.Counter = field(default_factory=collections.Counter)  # JPEG, PNG, DICOM, ...
    modes: collections.Counter = field(default_factory=collections.Counter)  # L, RGB, I;16, ...
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) per sampled file
    unreadable: list[str] = field(default_factory=list)  # sampled files whose header did not read


@dataclass
class Groups:
    """What keeps an image's relatives in one split: a column, or a pattern found in each path."""

    column: str | None  # dataset.group_by; None for a pattern, or a CSV's `group` (read as is)
    pattern: str | None  # dataset.group_pattern
    groups: int
    images: int  # images that have a group
    largest: int  # images in the largest group


@dataclass
class Lesions:
    """True lesion counts per image (ACNE04's lists): the column, and each class's range."""

    column: str
    ranges: dict[str, tuple[int, int]]


@dataclass
class Found:
    """What inspecting a source found: enough to propose its params and to tell the user."""

    source: str  # as given (raw.source)
    kind: str  # folder | csv | npz
    name: str  # the proposed dataset.name
    classes: dict[str, int] = field(default_factory=dict)  # class -> images, in the proposed order
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # official split -> class -> n
    split_from: str = ""  # where the official split comes from
    groups: Groups | None = None
    lesions: Lesions | None = None
    kinds: ImageKinds = field(default_factory=ImageKinds)
    csv: dict[str, Any] = field(default_factory=dict)  # raw.csv keys other than the defaults
    numbered: bool = False  # labels are class numbers: the names are placeholders (class0, level0)
    left_out: dict[str, int] = field(default_factory=dict)  # class -> images, too few to split
    skipped: collections.Counter = field(default_factory=collections.Counter)  # reason -> files or rows
    notes: list[str] = field(default_factory=list)


@dataclass
class Proposal:
    """The new params and how they came about."""

    found: Found
    current: dict[str, Any] | None  # the params file's values now (None: there is none)
    base: dict[str, Any]  # what the new params start from: `current`, else the repository's
    base_name: str
    detected: dict[str, Any]  # dotted key -> the value the inspection set
    params: dict[str, Any]  # base + detected + overlays
    model: config.Params  # the same, validated
    notes: list[str] = field(default_factory=list)  # what merging did that the user should know


# ---- inspection ------------------------------------------------------------------------------


def inspect(source: str) -> Found:
    """Inspect `source`: a folder, a CSV/TSV/TXT table or an .npz."""
    path = Path(os.path.expanduser(source))
    if not path.exists():
        raise RebalanceError(
            f"{source}: not found; give a folder of class folders, a .csv/.tsv/.txt table of images or "
            "a MedMNIST .npz (relative to the repository, or absolute)"
        )
    if path.is_dir():
        return inspect_folder(path, source)
    kind = source_kind(source)
    if kind == "npz":
        return inspect_npz(path, source)
    if kind == "csv":
        return inspect_csv(path, source)
    raise RebalanceError(
        f"{source}: not a source rebalance reads; give a folder of class folders, a .csv/.tsv/.txt "
        "table of images or a MedMNIST .npz (an archive: unpack it first)"
    )


def inspect_folder(folder: Path, source: str) -> Found:
    """Class folders, or split folders (`train/ val/ test/`, any case) of class folders."""
    dirs = sorted(e.name for e in folder.iterdir() if e.is_dir() and not e.name.startswith("."))
    loose = [e for e in sorted(folder.iterdir()) if e.is_file() and _is_image(e)]
    split_dirs: dict[str, str] = {}
    for name in dirs:
        split = official_split(name)
        if split in split_dirs:
            raise RebalanceError(
                f"{source}: holds both {split_dirs[split]}/ and {name}/, two {split} folders; merge them"
            )
        if split is not None:
            split_dirs[split] = name
    split_dirs = {s: split_dirs[s] for s in SPLITS if s in split_dirs}
    found = Found(source, "folder", _name_of(folder))
    others = [d for d in dirs if d not in split_dirs.values()] if split_dirs else []
    if others:
        found.notes.append(
            f"folders beside the split folders are not read: {', '.join(d + '/' for d in others)}"
        )
    files: dict[str, list[Path]] = collections.defaultdict(list)  # class -> its images
    per_split: dict[str, collections.Counter] = {s: collections.Counter() for s in split_dirs}
    seen: set[str] = set()  # class folders, with images or not
    for split, top in [(s, folder / d) for s, d in split_dirs.items()] or [("", folder)]:
        for label in sorted(e.name for e in top.iterdir() if e.is_dir() and not e.name.startswith(".")):
            seen.add(label)
            for path, rel, problem in walk(top / label, folder.resolve()):
                if problem or any(part.startswith(".") for part in rel.split("/")):
                    found.skipped["hidden, unreadable or linked out of the folder"] += 1
                elif not _is_image(path):
                    found.skipped["not an image file"] += 1
                else:
                    files[label].append(path)
                    if split:
                        per_split[split][label] += 1
    counts = {c: len(files[c]) for c in sorted(files, key=_natural)}
    if len(counts) < 2:
        raise RebalanceError(_folder_problem(folder, source, dirs, loose, counts))
    if loose:
        found.notes.append(f"{len(loose)} images directly in the folder, in no class folder, are not read")
    if seen - set(counts):
        found.notes.append(f"folders without images, not classes: {', '.join(sorted(seen - set(counts)))}")
    _set_classes(found, counts, numbered=False)
    if split_dirs:
        found.splits = {s: {c: per_split[s][c] for c in found.classes} for s in split_dirs}
        found.split_from = "folders " + ", ".join(f"{d}/" for d in split_dirs.values())
    kept = [p for c in found.classes for p in files[c]]
    found.groups = _path_groups([p.relative_to(folder).as_posix() for p in kept])
    found.kinds = _kinds(kept)
    return found


def _folder_problem(folder: Path, source: str, dirs: list[str], loose: list[Path], counts) -> str:
    """Why a folder is not a source of class folders, and the fix, in one line."""
    if counts:
        only, n = next(iter(counts.items()))
        inner = [e.name for e in (folder / only).iterdir() if e.is_dir()] if (folder / only).is_dir() else []
        hint = f"; if {only}/ holds the class folders, give {folder / only}" if inner else ""
        return f"{source}: one class folder only ({only}/, {n} images); rebalance needs two or more{hint}"
    if loose:
        return (
            f"{source}: its {len(loose)} images lie directly in the folder, in no class folder; put each "
            "class's images in a sub-folder named after the class, or give a CSV of path,label"
        )
    held = f"its folders ({', '.join(d + '/' for d in dirs[:4])}) hold none" if dirs else "it is empty"
    return (
        f"{source}: no images found ({held}); give a folder with one sub-folder of images per class "
        "(or train/ val/ test/ folders of class folders)"
    )


def inspect_csv(path: Path, source: str) -> Found:
    """A CSV or image list: one row per image (later rows of one image are read as its first)."""
    header = _list_header(path)
    table = _read_table(path, header)
    lists = _split_lists(path, table, header)
    if lists:
        parts = [table.assign(split="train")]
        parts += [_read_table(path.parent / name, header).assign(split=s) for s, name in lists.items()]
        table = pd.concat(parts, ignore_index=True)
    found = Found(source, "csv", _name_of(path))
    path_col, files, formats = _path_column(table, _FileIndex(path.parent), path)
    table = table.assign(_file=files, _format=formats)
    label = _label_column(table, path_col, path)
    rows = len(table)
    table = table.drop_duplicates(subset=[path_col])
    if len(table) < rows:
        found.notes.append(
            f"{rows - len(table)} rows repeat an image: each image is read once, as its first row"
        )
    missing = int(table._file.isna().sum())
    if missing:
        found.skipped["file not found"] += missing
        table = table[table._file.notna()]
    found.csv = _csv_keys(path_col, label, header, lists, table)
    lesion_col = _lesion_column(table, label, header)
    if header and "lesions" in header and lesion_col is None:  # a third column, but not lesion counts
        found.csv["header"] = [n if n != "lesions" else "column3" for n in header]
    classes, numbered = _row_classes(table, label, found.csv.get("label_separator"), lesion_col is not None)
    counts = classes.value_counts()
    order = label if isinstance(label, list) else sorted(counts.index, key=_natural)
    _set_classes(found, {c: int(counts[c]) for c in order if c in counts.index}, numbered)
    if found.csv.get("label_separator"):  # a class left out makes `Effusion|Pneumonia` Pneumonia
        classes = _settle(table[label].astype(str), found)
    classes = classes.where(classes.isin(list(found.classes)))
    found.skipped["no class of dataset.classes"] += int(classes.isna().sum())
    table = table.assign(_class=classes)[classes.notna()]
    if "split" in table.columns:
        _csv_splits(found, table, path, lists)
    if lesion_col is not None:
        numbers = pd.to_numeric(table[lesion_col])
        ranges = {
            c: (int(numbers[table._class == c].min()), int(numbers[table._class == c].max()))
            for c in found.classes
        }
        found.lesions = Lesions(lesion_col, ranges)
    found.groups = _column_groups(table, path_col) or _path_groups(list(table._file))
    found.kinds = _kinds([path.parent / f for f in table._file])
    return found


def inspect_npz(path: Path, source: str) -> Found:
    """A MedMNIST .npz: `{split}_images` and `{split}_labels`, labels 0, 1, ... naming classes in order."""
    fix = "give a MedMNIST .npz (train_images, train_labels, val_..., test_...)"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = list(data.files)
            if "train_images" not in arrays:
                raise RebalanceError(f"{source}: no train_images array (arrays: {', '.join(arrays)}); {fix}")
            labels = {s: np.asarray(data[f"{s}_labels"]) for s in SPLITS if f"{s}_labels" in arrays}
            shapes = {s: _npy_header(data.zip, f"{s}_images") for s in SPLITS if f"{s}_images" in arrays}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RebalanceError(f"{source}: cannot read the .npz ({reason}); {fix}") from None
    found = Found(source, "npz", _name_of(path))
    per_split: dict[str, collections.Counter] = {}
    for split, shape in shapes.items():
        y = _npz_labels(source, split, labels.get(split), shape[0])
        per_split[split] = collections.Counter(y.tolist())
        grey = len(shape) == 3 or 1 in (shape[1], shape[-1])
        side = shape[1:3] if len(shape) == 3 or shape[-1] in (1, 3) else shape[2:4]
        found.kinds.counted += shape[0]
        found.kinds.formats[f"{split}_images array"] += shape[0]
        found.kinds.modes["L" if grey else "RGB"] += shape[0]
        found.kinds.sizes.append((int(side[1]), int(side[0])))
    top = max(max(c, default=0) for c in per_split.values()) + 1
    _set_classes(found, {f"class{i}": sum(c[i] for c in per_split.values()) for i in range(top)}, True)
    found.splits = {s: {c: per_split[s][int(c[5:])] for c in found.classes} for s in per_split}
    found.split_from = "its arrays " + ", ".join(f"{s}_images" for s in per_split)
    return found


def _npz_labels(source: str, split: str, y: np.ndarray | None, n: int) -> np.ndarray:
    """One split's labels as whole numbers 0, 1, ... (N or N x 1; floats and booleans too)."""
    if y is None:
        raise RebalanceError(f"{source}: has {split}_images but no {split}_labels; MedMNIST files carry both")
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise RebalanceError(
            f"{source}: {split}_labels has shape {y.shape} (multi-label?); one class per image"
        )
    if len(y) != n:
        raise RebalanceError(f"{source}: {n} {split}_images but {len(y)} {split}_labels")
    try:
        whole = y.astype(np.float64)
    except (TypeError, ValueError):
        whole = np.array([np.nan])
    if not (np.isfinite(whole).all() and (whole % 1 == 0).all() and (whole >= 0).all()):
        raise RebalanceError(f"{source}: {split}_labels are not class numbers 0, 1, ...; one per image")
    return whole.astype(np.int64)


def _npy_header(archive: zipfile.ZipFile, key: str) -> tuple[int, ...]:
    """An array's shape from its .npy header in the archive (its pixels are not read)."""
    with archive.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read(f)
    if len(shape) not in (3, 4):
        raise ValueError(f"{key} has shape {shape}; expected N x H x W or N x H x W x 3")
    return tuple(shape)


# ---- inspection helpers ----------------------------------------------------------------------


def _is_image(path: Path) -> bool:
    return images.is_image_name(path) or images.is_dicom(path)


def _natural(name: str) -> list:
    """Sort key: level2 before level10."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def _name_of(path: Path) -> str:
    """A slug naming the dataset: a table's file name without the words every dataset uses
    (HAM10000_metadata.csv: ham10000), else the nearest folder that names more than that
    (ACNE04/Classification/NNEW_trainval_0.txt, an image list: acne04)."""
    if path.is_file() and path.suffix.lower() in (".csv", ".npz"):
        kept = [w for w in _words(path.stem) if w not in GENERIC and not (w.isdigit() and len(w) < 4)]
        if any(not w.isdigit() for w in kept):
            return "-".join(kept)
    folders = ([path.absolute()] if path.is_dir() else []) + list(path.absolute().parents)[:3]
    for folder in folders:
        if any(w not in GENERIC and not w.isdigit() for w in _words(folder.name)):
            return "-".join(_words(folder.name))
    return "dataset"


def _set_classes(found: Found, counts: dict[str, int], numbered: bool) -> None:
    """The proposed classes, in the given order, leaving out those too small to split (of class
    numbers only the last ones: a number is an index into dataset.classes)."""
    names = [c for c in counts if counts[c] >= LEAST]
    if numbered:
        names = list(counts)
        while names and counts[names[-1]] < LEAST:
            names.pop()
        for c in names:
            if counts[c] < LEAST:
                found.notes.append(f"class {c} has {counts[c]} images; stage count needs {LEAST}: add images")
    found.left_out = {c: n for c, n in counts.items() if c not in names}
    if len(names) < 2:
        shown = ", ".join(f"{c} {n}" for c, n in counts.items()) or "none"
        raise RebalanceError(
            f"{found.source}: fewer than two classes of {LEAST} or more images (found: {shown}); "
            "add images, or check the label column"
        )
    found.classes = {c: counts[c] for c in names}
    found.numbered = numbered


def _kinds(files: list[Path]) -> ImageKinds:
    """Every file counted; the headers of at most SAMPLE of them read, spread evenly."""
    kinds = ImageKinds(counted=len(files))
    step = max(1.0, len(files) / SAMPLE)
    for path in [files[int(i * step)] for i in range(min(SAMPLE, len(files)))]:
        kinds.sampled += 1
        try:
            fmt, mode, size = _header(path)
        except Exception as err:  # noqa: BLE001 - an unreadable header is reported, not raised
            kinds.unreadable.append(f"{path.name}: {type(err).__name__}")
            continue
        kinds.formats[fmt] += 1
        kinds.modes[mode] += 1
        kinds.sizes.append(size)
    return kinds


def _header(path: Path) -> tuple[str, str, tuple[int, int]]:
    """(format, mode, (width, height)) from a file's header, its pixels not decoded."""
    if images.is_dicom(path):
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        fmt = "DICOM" + (f" ({frames} frames)" if frames > 1 else "")
        mode = f"{getattr(ds, 'PhotometricInterpretation', '?')} {int(getattr(ds, 'BitsStored', 8))}-bit"
        return fmt, mode, (int(ds.Columns), int(ds.Rows))
    from PIL import Image

    with Image.open(path) as im:
        return im.format or path.suffix.lstrip(".").upper(), im.mode, im.size


def _path_groups(paths: list[str]) -> Groups | None:
    """A patient read from the paths (CheXpert's patient00001/, Kermany's person12_...): the
    patterns that match repeatedly, when together they match at least 30% of the images."""
    kept = []
    for pattern in PATH_GROUPS:
        hits = [m.group(0) for p in paths if (m := re.search(pattern, p))]
        if len(set(hits)) < len(hits):
            kept.append(pattern)
    if r"person\d+" in kept and any(re.search(KERMANY_NORMAL, p) for p in paths):
        kept.append(KERMANY_NORMAL)
    pattern = "|".join(kept)
    hits = collections.Counter(m.group(0) for p in paths if pattern and (m := re.search(pattern, p)))
    if not kept or sum(hits.values()) < 0.3 * len(paths):
        return None
    return Groups(None, pattern, len(hits), sum(hits.values()), max(hits.values()))


def _column_groups(table: pd.DataFrame, path_col: str) -> Groups | None:
    """A column of patient or lesion ids, by its name, that holds several images per id."""
    best: tuple[int, Groups] | None = None
    for col in table.columns:
        key = re.sub(r"[\s_\-]", "", str(col).lower())
        words = [i for i, w in enumerate(GROUP_WORDS) if w in key and (key == w or key.endswith("id"))]
        if col in (path_col, "_file", "_format", "_class", "split") or not words:
            continue  # (a `patient_age` column is no group)
        cells = table[col].astype(str).str.strip()
        cells = cells[cells != ""]
        if len(cells) < 0.5 * len(table) or cells.nunique() == len(cells):
            continue
        if best is None or words[0] < best[0]:
            sizes = cells.value_counts()
            group = Groups(None if col == "group" else col, None, len(sizes), len(cells), int(sizes.max()))
            best = (words[0], group)
    return best[1] if best else None


class _FileIndex:
    """Every file under a CSV's folder by path, name and stem: where each row's image lies."""

    def __init__(self, folder: Path):
        self.folder, self.paths = folder, set()
        self.by_name: dict[str, list[str]] = collections.defaultdict(list)
        self.by_stem: dict[str, list[str]] = collections.defaultdict(list)
        for path, rel, problem in walk(folder, folder.resolve()):
            if problem or (path.suffix and not images.is_image_name(path)):
                continue  # (a file named without a suffix may be a DICOM: kept)
            self.paths.add(rel)
            self.by_name[path.name].append(rel)
            self.by_stem[path.name.rsplit(".", 1)[0]].append(rel)

    def locate(self, cell: str) -> tuple[str, str] | None:
        """(the file, the raw.csv.path_format that makes the cell its path), or None."""
        if not cell:
            return None
        if cell in self.paths:
            return cell, "{}"
        prefix = self.folder.absolute().name + "/"  # CheXpert: paths written from the folder above
        if cell.startswith(prefix) and cell[len(prefix) :] in self.paths:
            return cell[len(prefix) :], "{}"
        last = PurePosixPath(cell).name
        for rel in sorted(self.by_name.get(last, [])):
            if rel.endswith("/" + cell):
                return rel, rel[: -len(cell)] + "{}"
        for rel in sorted(self.by_stem.get(last, [])):  # ISIC's isic_id: the file is <id>.jpg
            at = rel.rfind(cell)
            if at >= 0 and "/" not in rel[at + len(cell) :]:
                return rel, rel[:at] + "{}" + rel[at + len(cell) :]
        return None


def _list_header(path: Path) -> list[str] | None:
    """Column names for an image list without a header row (ACNE04's `levle0_1.jpg 0 1`): path,
    label, then `lesions` (kept only if they are lesion counts); None for a file with a header."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        first = f.readline().strip()
    sep = csv_read._separator(path)
    cells = [c.strip() for c in (first.split() if sep == r"\s+" else first.split(sep))]
    if len(cells) < 2 or not any(images.is_image_name(c) for c in cells):
        return None
    names = ["path", "label", "lesions"] + [f"column{i + 1}" for i in range(3, len(cells))]
    names = names[: len(cells)]
    if not images.is_image_name(cells[0]):  # `0 levle0_1.jpg`: the label first
        names[0], names[1] = "label", "path"
    return names


def _read_table(path: Path, header: list[str] | None) -> pd.DataFrame:
    table = csv_read._table(path, header)  # the reader's own parse: separators, blanks, `Path`
    if table.empty:
        raise RebalanceError(f"{path}: no rows; give a table with one row per image")
    return table


def _split_lists(path: Path, table: pd.DataFrame, header: list[str] | None) -> dict[str, str]:
    """Official val/test lists beside a train list, with the same columns (ACNE04's
    NNEW_trainval_0.txt and NNEW_test_0.txt): raw.csv.split_files."""
    hit = TRAIN_WORD.search(path.name)
    if hit is None or "split" in table.columns:
        return {}
    found = {}
    for split, words in SPLIT_WORDS.items():
        for word in words:
            for spelt in sorted({word, word.capitalize(), word.upper()}):
                name = path.name[: hit.start()] + spelt + path.name[hit.end() :]
                if (
                    split not in found
                    and (path.parent / name).is_file()
                    and _same_columns(path.parent / name, table, header)
                ):
                    found[split] = name
    return found


def _same_columns(path: Path, table: pd.DataFrame, header: list[str] | None) -> bool:
    try:
        return list(_read_table(path, header).columns) == list(table.columns)
    except RebalanceError:
        return False


def _path_column(table: pd.DataFrame, index: _FileIndex, path: Path) -> tuple[str, pd.Series, pd.Series]:
    """The column whose cells name the images (most of its first 200 cells locate a file), each
    row's file (relative to the CSV's folder; None when not found) and the path_format naming it."""
    folders = tuple(dict.fromkeys([path.parent.absolute(), path.parent.resolve()]))
    shares = {}
    for col in table.columns:
        cells = [csv_read._clean(str(c), folders) for c in table[col].head(200)]
        shares[col] = sum(index.locate(c) is not None for c in cells) / max(1, len(cells))
    best = max(shares, key=shares.get) if shares else None
    if best is None or shares[best] < 0.2:
        raise RebalanceError(
            f"{path}: no column names image files under {path.parent} (columns: "
            f"{', '.join(map(str, table.columns))}); add a `path` column relative to the CSV's folder"
        )
    located = [index.locate(csv_read._clean(str(c), folders)) for c in table[best]]
    files = pd.Series([hit[0] if hit else None for hit in located], index=table.index, dtype=object)
    formats = pd.Series([hit[1] if hit else None for hit in located], index=table.index, dtype=object)
    return best, files, formats


def _one_hot(cells: pd.Series) -> bool:
    """Every non-blank cell 0 or 1 (CheXpert's -1.0, uncertain, too), and some 1."""
    values = set(cells.astype(str).str.strip().str.lower()) - {""}
    allowed = {"0", "1", "0.0", "1.0", "-1", "-1.0", "true", "false"}
    return values <= allowed and bool(values & {"1", "1.0", "true"})


def _label_column(table: pd.DataFrame, path_col: str, path: Path) -> str | list[str]:
    """The class column (by its name), else one 0/1 column per class (ISIC 2019, CheXpert)."""
    others = [c for c in table.columns if c not in (path_col, "_file", "_format", "split")]
    named = sorted(
        (LABEL_NAMES.index(key), col)
        for col in others
        if (key := re.sub(r"[\s_\-]", "", str(col).lower())) in LABEL_NAMES
    )
    for _, col in named:
        if 1 < table[col].astype(str).str.strip().nunique() <= 200:
            return col
    hot = [c for c in others if _one_hot(table[c])]
    if len(hot) >= 2:
        return hot
    raise RebalanceError(
        f"{path}: no column recognisable as the label (columns: {', '.join(map(str, table.columns))}); "
        "name the class column `label` (or give one 0/1 column per class)"
    )


def _csv_keys(path_col: str, label: str | list[str], header, lists, table: pd.DataFrame) -> dict[str, Any]:
    """raw.csv keys other than the defaults."""
    keys: dict[str, Any] = {}
    if path_col != "path":
        keys["path"] = path_col
    if label != "label":
        keys["label"] = label
    formats = sorted(set(table._format.dropna()), key=lambda f: (f != "{}", f))
    if formats and formats != ["{}"]:
        keys["path_format"] = formats[0] if len(formats) == 1 else formats
    if isinstance(label, str) and table[label].astype(str).str.contains("|", regex=False).mean() > 0.01:
        keys["label_separator"] = "|"  # ChestX-ray14's `Effusion|Pneumonia`
    if header:
        keys["header"] = header
    if lists:
        keys["split_files"] = dict(lists)
    return keys


def _row_classes(
    table: pd.DataFrame, label: str | list[str], separator: str | None, graded: bool
) -> tuple[pd.Series, bool]:
    """Each row's class with every label a class (None: none), as the reader reads it; and
    whether the labels are class numbers (named class0, class1, ... or, graded, level0, ...)."""
    if isinstance(label, list):  # one-hot: the one column holding 1
        hot = [csv_read._hot(tuple(map(str, row)), label) for row in table[label].itertuples(index=False)]
        return pd.Series(hot, index=table.index, dtype=object), False
    cells = table[label].astype(str).str.strip()
    if separator:
        classes = sorted({part.strip() for cell in cells for part in cell.split(separator) if part.strip()})
        return cells.map(lambda v: csv_source.label_of(v, classes, separator)), False
    try:
        whole = all(float(v) % 1 == 0 for v in cells if v) and (cells != "").any()
    except ValueError:
        whole = False
    if not whole:
        return cells.where(cells != ""), False
    numbers = sorted({int(float(v)) for v in cells if v})
    word = "level" if graded else "class"
    names = (
        {n: f"{word}{n}" for n in numbers}
        if numbers == list(range(len(numbers)))
        else {n: str(n) for n in numbers}
    )
    return cells.map(lambda v: names[int(float(v))] if v else None), True


def _settle(cells: pd.Series, found: Found) -> pd.Series:
    """Multi-label cells read again once classes were left out (`Effusion|Pneumonia` is then
    Pneumonia); the counts follow."""
    separator = found.csv["label_separator"]
    classes = list(found.classes)
    for _ in range(4):
        rows = pd.Series(
            [csv_source.label_of(v, classes, separator) for v in cells], index=cells.index, dtype=object
        )
        counts = rows.value_counts()
        kept = [c for c in classes if counts.get(c, 0) >= LEAST]
        if kept == classes or len(kept) < 2:
            break
        found.left_out.update({c: int(counts.get(c, 0)) for c in classes if c not in kept})
        classes = kept
    found.classes = {c: int(counts.get(c, 0)) for c in classes}
    return rows


def _csv_splits(found: Found, table: pd.DataFrame, path: Path, lists: dict[str, str]) -> None:
    splits = table.split.map(lambda v: official_split(str(v)) or "")
    unknown = sorted(set(table.split[splits == ""]))
    if unknown:
        found.notes.append(f"split values read as no split: {', '.join(map(str, unknown[:5]))}")
    found.splits = {
        s: {c: int(((splits == s) & (table._class == c)).sum()) for c in found.classes}
        for s in SPLITS
        if (splits == s).any()
    }
    found.split_from = "the `split` column"
    if lists:
        found.split_from = f"the lists {path.name} (train), " + ", ".join(
            f"{n} ({s})" for s, n in lists.items()
        )


def _lesion_column(table: pd.DataFrame, label: str | list[str], header: list[str] | None) -> str | None:
    """A column of true lesion counts: named so, whole numbers >= 0; an image list's third column
    only if its counts rise with the grade."""
    for col in table.columns:
        if re.sub(r"[\s_\-]", "", str(col).lower()) not in LESION_NAMES:
            continue
        numbers = pd.to_numeric(table[col], errors="coerce")
        if numbers.isna().any() or (numbers < 0).any() or (numbers % 1 != 0).any():
            continue
        if header and isinstance(label, str):
            grades = pd.to_numeric(table[label], errors="coerce")
            if grades.isna().any():
                continue
            medians = [numbers[grades == g].median() for g in sorted(set(grades))]
            if medians != sorted(medians) or numbers.max() <= grades.max():
                continue
        return col
    return None


# ---- the proposal ----------------------------------------------------------------------------


def propose(found: Found, base: dict[str, Any]) -> dict[str, Any]:
    """The keys the inspection decides, {dotted key: value}; each replaces the base's value."""
    dataset, raw = base.get("dataset") or {}, base.get("raw") or {}
    synth, generators = base.get("synthesize") or {}, base.get("generators") or {}
    own = found.kind == "folder" and raw.get("source") == found.source  # the user's metadata stays
    groups = found.groups
    keys: dict[str, Any] = {
        "dataset.name": found.name,
        "dataset.classes": list(found.classes),
        "dataset.lesion_bins": _bins(found, dataset.get("lesion_bins")),
        "dataset.metadata": dataset.get("metadata") if own else None,
        "dataset.group_by": groups.column if groups else (dataset.get("group_by") if own else None),
        "dataset.group_pattern": groups.pattern if groups else None,
        "raw.source": found.source,
        "raw.csv": Csv().model_dump() | found.csv,
    }
    if "val" in found.splits:
        keys["count.official_val"] = "redraw" if min(found.splits["val"].values()) < TINY_VAL else "keep"
    limits = (base.get("count") or {}).get("max_per_class") or {}
    if any(c not in found.classes for c in limits):
        keys["count.max_per_class"] = {c: n for c, n in limits.items() if c in found.classes}
    keys["synthesize.methods"] = _methods(found, synth.get("methods") or {})
    bank = (synth.get("lesion_edit") or {}).get("bank_grades")
    if bank and not set(bank) <= set(found.classes):
        keys["synthesize.lesion_edit.bank_grades"] = None
    for method in ("diffusion", "gan"):
        if method in keys["synthesize.methods"] and method not in generators:
            keys[f"generators.{method}"] = {}
    return keys


def _bins(found: Found, current: dict | None) -> dict[str, list] | None:
    """Lesion-count bins: none without lesion counts; the current ones when they bin these
    classes (ACNE04's Hayashi bins), else each class's observed range, the last one open."""
    if found.lesions is None:
        return None
    if current and set(current) == set(found.classes):
        return current
    last = list(found.classes)[-1]
    return {c: [lo, None if c == last else hi] for c, (lo, hi) in found.lesions.ranges.items()}


def _methods(found: Found, current: dict[str, float]) -> dict[str, float]:
    """The current methods and shares; lesion_edit only with lesion counts (its share spread over
    the others in proportion); diffusion alone when nothing else is left."""
    if found.lesions is not None and current:
        return dict(current)
    rest = {m: s for m, s in current.items() if m != "lesion_edit" and s > 0}
    total = sum(rest.values())
    return {m: s / total for m, s in rest.items()} if total else {"diffusion": 1.0}


def set_keys(params: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    """`params` with each dotted key of `keys` set to its value (replaced, not merged)."""
    out = copy.deepcopy(params)
    for dotted, value in keys.items():
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = copy.deepcopy(value)
    return drop_orphan_variants(out)


def merge(params: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` merged into `params`: mappings merge key by key, anything else replaces;
    `synthesize.methods`, `train.variants` and `generators` are replaced whole (shares that sum to
    1, the set of models, the set of generators), and a classifier variant of a method no longer
    in synthesize.methods is dropped."""
    out = copy.deepcopy(params)
    _merge_into(out, overlay, "")
    return drop_orphan_variants(out)


def _merge_into(base: dict[str, Any], overlay: dict[str, Any], at: str) -> None:
    for key, value in overlay.items():
        dotted = f"{at}.{key}" if at else str(key)
        if isinstance(value, dict) and isinstance(base.get(key), dict) and dotted not in REPLACED_WHOLE:
            _merge_into(base[key], value, dotted)
        else:
            base[key] = copy.deepcopy(value)


def drop_orphan_variants(params: dict[str, Any]) -> dict[str, Any]:
    """Drop the per-generator classifier variants (`method: x`) of methods not in synthesize.methods."""
    methods = (params.get("synthesize") or {}).get("methods")
    variants = (params.get("train") or {}).get("variants")
    if isinstance(methods, dict) and isinstance(variants, dict):
        gone = [
            n for n, v in variants.items() if isinstance(v, dict) and v.get("method") not in (None, *methods)
        ]
        for name in gone:
            del variants[name]
    return params


# ---- params files ----------------------------------------------------------------------------


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping from `path`; anything else is a one-line error naming the file and the fix."""
    if not path.is_file():
        raise RebalanceError(
            f"{path}: {what} not found; give the path of a YAML file (as examples/params/gpu.yaml)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RebalanceError(f"{where}: invalid YAML ({problem}); fix that line") from None
    except UnicodeDecodeError:
        raise RebalanceError(f"{path}: {what} is not a text file; give a YAML file") from None
    if not isinstance(data, dict):
        got = "empty" if data is None else f"a {type(data).__name__}"
        raise RebalanceError(
            f"{path}: {what} must be a YAML mapping of groups (dataset:, raw:, ...), not {got}; "
            "see examples/params/ for the form"
        )
    return data


def defaults() -> tuple[dict[str, Any], str]:
    """The repository's params.yaml, or (rebalance installed without it) the schema's defaults."""
    if REPOSITORY_PARAMS.is_file():
        return read_yaml(REPOSITORY_PARAMS, "the repository's params.yaml"), "the repository's params.yaml"
    skeleton = {
        "dataset": {"name": "dataset", "classes": ["a", "b"]},
        "raw": {"source": "data/images"},
        "synthesize": {"methods": {"diffusion": 1.0}},
        "generators": {"diffusion": {}},
        **{group: {} for group in ("count", "assess", "flip", "fuse", "train", "evaluate")},
    }
    params = config.validate(skeleton).model_dump(mode="json")
    params["generators"] = {
        k: v for k, v in params["generators"].items() if v is not None
    }  # trained ones only
    return params, "the schema's defaults"


def build(source: str, params_path: str | Path, merges: tuple[str, ...] | list[str] = ()) -> Proposal:
    """Inspect `source` and build the new params: the params file's values (else the repository's),
    the detected keys, then each overlay in order; validated. Nothing is written."""
    params_path = Path(params_path)
    overlays = [(m, read_yaml(Path(m), "--merge overlay")) for m in merges]  # a bad file fails first
    current = read_yaml(params_path, "params file") if params_path.exists() else None
    base, base_name = (current, str(params_path)) if current is not None else defaults()
    found = inspect(source)
    detected = propose(found, base)
    params, notes, set_by = set_keys(base, detected), [], {}
    for name, overlay in overlays:
        params = merge(params, overlay)
        set_by.update({key: name for key in _dotted(overlay)})
        given = overlay.get("raw", {}).get("source") if isinstance(overlay.get("raw"), dict) else None
        if given is not None and given != found.source:
            notes.append(f"raw.source: {found.source} (the SOURCE inspected) kept over {name}'s {given}")
            params["raw"]["source"] = found.source
    try:
        model = config.validate(params, f"{params_path} as rebalance init would write it")
    except config.ParamsError as err:
        key = re.search(r"`([^`]+)`", str(err))
        origin = next(
            (f for k, f in set_by.items() if key and (k == key[1] or key[1].startswith(k + "."))), None
        )
        raise config.ParamsError(f"{err} (set by {origin})" if origin else str(err)) from None
    return Proposal(found, current, base, base_name, detected, params, model, notes)


def _dotted(tree: dict[str, Any], at: str = "") -> list[str]:
    """Every dotted key of a mapping, leaves and inner mappings alike."""
    keys = []
    for key, value in tree.items():
        dotted = f"{at}.{key}" if at else str(key)
        keys.append(dotted)
        if isinstance(value, dict):
            keys += _dotted(value, dotted)
    return keys


class _Dumper(yaml.SafeDumper):
    """YAML as params.yaml writes it: lists of scalars and small mappings of scalars on one line."""


def _flat(items) -> bool:
    return all(not isinstance(v, (dict, list)) for v in items)


_Dumper.add_representer(
    dict,
    lambda d, data: d.represent_mapping(
        "tag:yaml.org,2002:map", data.items(), flow_style=_flat(data.values()) and len(data) <= 4
    ),
)
_Dumper.add_representer(
    list, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_flat(data))
)


def render(params: dict[str, Any]) -> str:
    """params as YAML, keys in their order, lists of scalars and small mappings on one line."""
    return yaml.dump(params, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


def header(source: str, merges: tuple[str, ...] | list[str]) -> str:
    """The comment that heads a params.yaml written by `rebalance init`."""
    merged = "".join(f" --merge {m}" for m in merges)
    return (
        f"# Written by: rebalance init {source}{merged}\n"
        "# (the previous params with what inspecting the source found). Every key is described in\n"
        "# docs/reference/params.md (types and defaults: rebalance/config/schema.py and synth.py);\n"
        "# the previous file's comments are not kept.\n"
    )


def render_diff(old: dict[str, Any] | None, new: dict[str, Any], old_name: str, new_name: str) -> str:
    """A unified diff of two params' values, both rendered the same way (comments aside)."""
    before = render(old).splitlines(keepends=True) if old is not None else []
    return "".join(
        difflib.unified_diff(before, render(new).splitlines(keepends=True), old_name, new_name, n=2)
    )


# ---- the summary -----------------------------------------------------------------------------


def summary(found: Found) -> str:
    """What inspection found, for the user."""
    kind = {"folder": "a folder", "csv": "a table", "npz": "a MedMNIST .npz"}[found.kind]
    lines = [f"Source: {found.source} ({kind})"]
    lines.append(f"Classes ({len(found.classes)}, {sum(found.classes.values())} images):")
    width = max(len(c) for c in found.classes)
    lines += [f"  {c:<{width}}  {n:>7}" for c, n in found.classes.items()]
    if found.numbered:
        lines.append("  (the labels are class numbers: name the classes in dataset.classes, in this order)")
    lines += [
        f"  left out: {c} ({n} images; a class needs {LEAST} to be split)" for c, n in found.left_out.items()
    ]
    if found.splits:
        lines.append(f"Split: official, from {found.split_from}:")
        for s, per in found.splits.items():
            lines.append(f"  {s:<5}  " + ", ".join(f"{c} {n}" for c, n in per.items()))
        missing = [s for s in SPLITS if s not in found.splits]
        if missing:
            lines.append(f"  {' and '.join(missing)}: drawn from train by stage count")
        if "val" in found.splits and min(found.splits["val"].values()) < TINY_VAL:
            lines.append(f"  val has fewer than {TINY_VAL} images of a class: merged into train, drawn anew")
    else:
        lines.append("Split: none in the source; stage count draws train/val/test (count.split)")
    g = found.groups
    if g is None:
        lines.append("Groups: none found (each image is its own unit; copies are still kept together)")
    else:
        what = (
            f"column `{g.column}`"
            if g.column
            else f"pattern '{g.pattern}' in the paths"
            if g.pattern
            else "column `group`"
        )
        lines.append(f"Groups: {what}: {g.groups} groups of {g.images} images (at most {g.largest} in one)")
    lines += _kind_lines(found.kinds)
    if found.lesions is not None:
        ranges = ", ".join(f"{c} {lo}-{hi}" for c, (lo, hi) in found.lesions.ranges.items())
        lines.append(f"Lesion counts: column `{found.lesions.column}` ({ranges})")
    else:
        lines.append("Lesion counts: none (dataset.lesion_bins: null; no lesion_edit)")
    lines += [f"Skipped: {n} ({reason})" for reason, n in sorted(found.skipped.items()) if n]
    lines += [f"Note: {note}" for note in found.notes]
    return "\n".join(lines)


def _kind_lines(kinds: ImageKinds) -> list[str]:
    def top(counter: collections.Counter) -> str:
        return ", ".join(f"{k} {n}" for k, n in counter.most_common(4))

    read = (
        f"headers of {kinds.sampled} of {kinds.counted} files" if kinds.sampled else f"{kinds.counted} images"
    )
    lines = [f"Images ({read}): {top(kinds.formats)}; modes {top(kinds.modes)}"]
    if kinds.sizes:
        area = [w * h for w, h in kinds.sizes]
        small, large = kinds.sizes[area.index(min(area))], kinds.sizes[area.index(max(area))]
        widths, heights = zip(*kinds.sizes)
        median = f"{int(statistics.median(widths))}x{int(statistics.median(heights))}"
        square = sum(w == h for w, h in kinds.sizes) / len(kinds.sizes)
        lines.append(
            f"  sizes {small[0]}x{small[1]} to {large[0]}x{large[1]}, median {median}, {square:.0%} square"
        )
    if any(m in ("I;16", "I;16B", "I", "F") or "16-bit" in m or "12-bit" in m for m in kinds.modes):
        lines.append("  16-bit or float images: windowed to 8 bit by raw.window")
    if kinds.unreadable:
        lines.append(f"  unreadable headers: {len(kinds.unreadable)} ({', '.join(kinds.unreadable[:3])})")
    return lines

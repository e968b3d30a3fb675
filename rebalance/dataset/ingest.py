"""Ingest a user's folder of class sub-folders: find the usable images, report the rest.

Two layouts: `<source>/<class>/...` (the split is made by stage count), or a source that brings
its own split, `<source>/{train,val,test}/<class>/...`, ingested as `data/raw/<class>/<split>/...`
with the official split recorded. The source folder is only ever read. Bad files (not an image,
unreadable, a decompression bomb, a symlink that is broken or leads out of the source folder) are
skipped and reported, or stop the run with a one-line error when `raw.on_bad_file: error`; files
under hidden folders (`.ipynb_checkpoints/`, ...) are always skipped and reported. A class with no
usable image, or a class folder that is a symlink out of the source, is always an error.

Usable files are copied byte for byte, except 16-bit and float images, which are windowed to 8 bit
(`raw.window`, see rebalance/core/images.py) and written as PNG: `x.png` keeps its name, `x.tif`
becomes `x.tif.png`; images.csv's `source` column names the original file.

The walk of the source and stage scan's listing of it are in listing.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebalance.config import Params
from rebalance.config.schema import SPLITS, official_split
from rebalance.core import images
from rebalance.core.errors import RebalanceError
from rebalance.core.hashing import sha256_text
from rebalance.core.images import is_image_name
from rebalance.dataset.ingest_files import Ingested, ingest_files, windowed_name
from rebalance.dataset.listing import link_problem, listing_text, walk


@dataclass
class Scan:
    images: list[tuple[str, str]] = field(default_factory=list)  # (name in data/raw, label)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"} (source-relative)
    source: dict[str, str] = field(default_factory=dict)  # name in data/raw -> path in the source folder
    official: dict[str, str] = field(default_factory=dict)  # name -> split, when the source brings one
    windowed: set[str] = field(default_factory=set)  # names of 16-bit/float images (written as 8-bit PNG)
    prints: dict[str, Ingested] = field(default_factory=dict)  # name -> its sha256 and fingerprint


def settings(params: Params) -> dict[str, Any]:
    """The params that shape data/raw (kept in data/raw/ingest.json to tell whether it is current).

    For a folder source also the window and a digest of the source's listing, so that an added or
    changed file makes data/raw stale for `rebalance plan` too.
    """
    ds, raw = params.dataset.model_dump(), params.raw.model_dump()
    out = {k: raw[k] for k in ("source", "on_bad_file", "demo")} | {
        k: ds[k] for k in ("classes", "metadata", "group_by")
    }
    if params.raw.source != "demo":
        out |= {k: raw[k] for k in ("window", "dicom_frame", "csv")}
        out["listing"] = sha256_text(listing_text(params))
    return out


def split_folders(folder: Path, classes: list[str]) -> dict[str, str]:
    """The split folders of a source laid out by split, {split: folder name} (`Train/`, `valid/`,
    ... as schema.SPLIT_NAMES reads them); {} for class folders."""
    found: dict[str, str] = {}
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        split = official_split(entry.name)
        if split is None or entry.name in classes or not entry.is_dir():
            continue
        if split in found:
            raise RebalanceError(
                f"{folder}: holds both {found[split]}/ and {entry.name}/, two {split} folders; merge them"
            )
        found[split] = entry.name
    if found and any((folder / c).is_dir() for c in classes):
        raise RebalanceError(
            f"{folder}: holds both split folders ({', '.join(found.values())}) and class folders; use either "
            "<class>/ folders or train/ val/ test/ folders each holding <class>/ folders"
        )
    return {s: found[s] for s in SPLITS if s in found}


def scan(
    folder: Path,
    classes: list[str],
    on_bad_file: str = "skip",
    verify: bool = True,
    processes: int | None = None,
    copy_to: Path | None = None,
    window: str = "percentile",
    frame: int | str = 0,
) -> Scan:
    """The usable images of a folder source, the rest reported. With `copy_to` (stage raw's output
    folder) each usable image is written there by the worker that verifies it (one read, one pass)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RebalanceError(
            f"{folder}: source folder not found; set raw.source in params.yaml to a folder "
            "with one sub-folder per class, or to `demo`"
        )
    root = folder.resolve()
    result = Scan()
    splits = split_folders(folder, classes)
    for top in [folder, *(folder / s for s in splits.values())]:
        if top != folder:
            _check_folder_link(top, root, "split")
        what = "a split (train, val, test)" if top == folder and splits else "in dataset.classes"
        for entry in sorted(top.iterdir()):
            if entry.name.startswith(".") or entry.name in classes or entry.name in splits.values():
                continue
            rel = entry.relative_to(folder).as_posix()
            if entry.is_dir():
                result.skipped.append({"path": rel + "/", "reason": f"folder not {what}"})
            elif entry.is_symlink() and link_problem(entry, root):
                result.skipped.append({"path": rel, "reason": link_problem(entry, root)})
    pending: list[tuple[str, str | None, Path, str]] = []  # (label, split, file, name in data/raw)
    for label in classes:
        for split in splits or [None]:
            class_dir = folder / splits[split] / label if split else folder / label
            _check_folder_link(class_dir, root, "class")
            if not class_dir.is_dir():
                if split:
                    continue  # a class may be absent from one split
                raise RebalanceError(
                    f"{class_dir}: class folder missing; create it or remove {label!r} from dataset.classes"
                )
            prefix = f"{label}/{split}" if split else label
            found_here = _candidates(class_dir, folder, result, on_bad_file, prefix)
            pending += [(label, split, path, name) for path, name in found_here]
    # every class in one pool (one start-up, no idle tail per class)
    files = [(path, name) for _, _, path, name in pending]
    checked = ingest_files(files, copy_to, window, processes, frame) if verify else [Ingested()] * len(files)
    found = dict.fromkeys(classes, 0)
    for (label, split, path, name), done in zip(pending, checked):
        if done.problem:
            _bad(path, done.problem, folder, result, on_bad_file)
            continue
        if done.windowed:
            name = windowed_name(name)
            result.windowed.add(name)
        if done.pixels:
            result.prints[name] = done
        if name in result.source:
            raise RebalanceError(
                f"{path}: would be ingested as data/raw/{name}, as {result.source[name]} is "
                "(16-bit and float images become <name>.png); rename one of the two files"
            )
        result.images.append((name, label))
        result.source[name] = path.relative_to(folder).as_posix()
        if split:
            result.official[name] = split
        found[label] += 1
    for label in classes:
        if found[label] == 0:
            where = folder / label if not splits else f"{folder}/{{{','.join(splits.values())}}}/{label}"
            raise RebalanceError(
                f"{where}: no usable images; add images or remove {label!r} from dataset.classes"
            )
    result.images.sort()
    return result


def _check_folder_link(path: Path, root: Path, what: str) -> None:
    """A class or split folder that is a broken symlink or leads out of the source: one-line error."""
    problem = link_problem(path, root)
    if problem:
        raise RebalanceError(
            f"{path}: {what} folder is a {problem}; move or copy its images into the source folder "
            "(symlinks are followed only within it)"
        )


def _bad(path: Path, reason: str, folder: Path, result: Scan, on_bad_file: str) -> None:
    """A file found unusable: reported as skipped, or a one-line error in strict mode."""
    if on_bad_file == "error":
        raise RebalanceError(f"{path}: {reason}; remove the file or set raw.on_bad_file: skip")
    rel = path.relative_to(folder).as_posix() + ("/" if path.is_dir() else "")
    result.skipped.append({"path": rel, "reason": reason})


def _candidates(
    class_dir: Path, folder: Path, result: Scan, on_bad_file: str, prefix: str
) -> list[tuple[Path, str]]:
    """The image files under one class folder as (file, name in data/raw before windowing); the
    others reported (or an error). Not yet decoded: scan ingests every class's files in one pool."""
    candidates = []
    top = class_dir.relative_to(folder).as_posix()
    for path, rel, problem in walk(class_dir, folder.resolve()):
        hidden = [part for part in rel.split("/")[:-1] if part.startswith(".")]
        if hidden:
            result.skipped.append({"path": f"{top}/{rel}", "reason": f"inside hidden folder {hidden[0]}/"})
            continue
        if path.name.startswith("."):
            continue
        if problem:
            _bad(path, problem, folder, result, on_bad_file)
            continue
        if not (is_image_name(path) or images.is_dicom(path)):
            _bad(path, images.NOT_AN_IMAGE, folder, result, on_bad_file)
            continue
        candidates.append((path, f"{prefix}/{rel}"))
    return candidates

"""Ingest a user's folder of class sub-folders: find the usable images, report the rest.

Two layouts: `<source>/<class>/...` (the split is made by stage count), or a source that brings
its own split, `<source>/{train,val,test}/<class>/...`, ingested as `data/raw/<class>/<split>/...`
with the official split recorded. The source folder is only ever read. Bad files (not an image,
unreadable) are skipped and reported, or stop the run with a one-line error when
`raw.on_bad_file: error`; files under hidden folders (`.ipynb_checkpoints/`, ...) are always
skipped and reported. A class with no usable image is always an error.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.core.errors import RebalanceError
from stages.core.images import BadImageError, is_image_name, open_rgb
from stages.core.schema import SPLITS


@dataclass
class Scan:
    images: list[tuple[str, str]] = field(default_factory=list)  # (name in data/raw, label)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"} (source-relative)
    source: dict[str, str] = field(default_factory=dict)  # name in data/raw -> path in the source folder
    official: dict[str, str] = field(default_factory=dict)  # name -> split, when the source brings one


def settings(params: dict[str, Any]) -> dict[str, Any]:
    """The params that shape data/raw (kept in data/raw/ingest.json to tell whether it is current)."""
    ds, raw = params["dataset"], params["raw"]
    return {k: raw[k] for k in ("source", "on_bad_file", "demo")} | {
        k: ds[k] for k in ("classes", "metadata", "group_by")
    }


def split_folders(folder: Path, classes: list[str]) -> list[str]:
    """The split folders (train/val/test) of a source laid out by split; [] for class folders."""
    found = [s for s in SPLITS if (folder / s).is_dir() and s not in classes]
    if found and any((folder / c).is_dir() for c in classes):
        raise RebalanceError(
            f"{folder}: holds both split folders ({', '.join(found)}) and class folders; use either "
            "<class>/ folders or train/ val/ test/ folders each holding <class>/ folders"
        )
    return found


def scan(folder: Path, classes: list[str], on_bad_file: str = "skip", verify: bool = True) -> Scan:
    folder = Path(folder)
    if not folder.is_dir():
        raise RebalanceError(
            f"{folder}: source folder not found; set raw.source in params.yaml to a folder "
            "with one sub-folder per class, or to `demo`"
        )
    result = Scan()
    splits = split_folders(folder, classes)
    tops = [folder / s for s in splits] if splits else [folder]
    for top in tops:
        for entry in sorted(top.iterdir()):
            if entry.is_dir() and entry.name not in classes and entry.name not in splits:
                if not entry.name.startswith("."):
                    rel = entry.relative_to(folder).as_posix()
                    result.skipped.append({"path": rel + "/", "reason": "folder not in dataset.classes"})
    for label in classes:
        found = 0
        for split in splits or [None]:
            class_dir = folder / split / label if split else folder / label
            if not class_dir.is_dir():
                if split:
                    continue  # a class may be absent from one split
                raise RebalanceError(
                    f"{class_dir}: class folder missing; create it or remove {label!r} from dataset.classes"
                )
            for path in _files(class_dir, folder, result, on_bad_file, verify):
                within = path.relative_to(class_dir).as_posix()
                name = f"{label}/{split}/{within}" if split else f"{label}/{within}"
                result.images.append((name, label))
                result.source[name] = path.relative_to(folder).as_posix()
                if split:
                    result.official[name] = split
                found += 1
        if found == 0:
            where = folder / label if not splits else f"{folder}/{{{','.join(splits)}}}/{label}"
            raise RebalanceError(
                f"{where}: no usable images; add images or remove {label!r} from dataset.classes"
            )
    result.images.sort()
    return result


def _files(class_dir: Path, folder: Path, result: Scan, on_bad_file: str, verify: bool) -> list[Path]:
    """The usable image files under one class folder; the others reported (or an error)."""

    def bad(path: Path, reason: str) -> None:
        if on_bad_file == "error":
            raise RebalanceError(f"{path}: {reason}; remove the file or set raw.on_bad_file: skip")
        result.skipped.append({"path": path.relative_to(folder).as_posix(), "reason": reason})

    usable = []
    for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
        hidden = [part for part in path.relative_to(class_dir).parts[:-1] if part.startswith(".")]
        if hidden:
            rel = path.relative_to(folder).as_posix()
            result.skipped.append({"path": rel, "reason": f"inside hidden folder {hidden[0]}/"})
            continue
        if path.name.startswith("."):
            continue
        if not is_image_name(path):
            bad(path, "not an image file")
            continue
        if verify:
            try:
                open_rgb(path)
            except BadImageError as err:
                bad(path, str(err).split(": ", 1)[1].split(";")[0])
                continue
        usable.append(path)
    return usable


def copy_images(folder: Path, found: Scan, out_dir: Path) -> None:
    """Copy the usable images byte for byte (never linking: the source must stay untouched)."""
    for name, _ in found.images:
        dst = out_dir / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(folder) / found.source[name], dst)

"""Ingest a user's folder of class sub-folders: find the usable images, report the rest.

The source folder is only ever read. Bad files (not an image, unreadable) are skipped and
reported, or stop the run with a one-line error when `raw.on_bad_file: error`. A class with no
usable image is always an error: a class cannot be balanced from nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from stages.core.errors import RebalanceError
from stages.core.images import BadImageError, is_image_name, open_rgb


@dataclass
class Scan:
    images: list[tuple[str, str]] = field(default_factory=list)  # (name relative to folder, label)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}


def scan(folder: Path, classes: list[str], on_bad_file: str = "skip", verify: bool = True) -> Scan:
    folder = Path(folder)
    if not folder.is_dir():
        raise RebalanceError(
            f"{folder}: source folder not found; set raw.source in params.yaml to a folder "
            "with one sub-folder per class, or to `demo`"
        )
    result = Scan()

    def bad(path: Path, reason: str) -> None:
        if on_bad_file == "error":
            raise RebalanceError(f"{path}: {reason}; remove the file or set raw.on_bad_file: skip")
        result.skipped.append({"path": str(path.relative_to(folder)), "reason": reason})

    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and entry.name not in classes and not entry.name.startswith("."):
            result.skipped.append({"path": entry.name + "/", "reason": "folder not in dataset.classes"})
    for label in classes:
        class_dir = folder / label
        if not class_dir.is_dir():
            raise RebalanceError(
                f"{class_dir}: class folder missing; create it or remove {label!r} from dataset.classes"
            )
        found = 0
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
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
            result.images.append((path.relative_to(folder).as_posix(), label))
            found += 1
        if found == 0:
            raise RebalanceError(
                f"{class_dir}: no usable images; add images or remove {label!r} from dataset.classes"
            )
    return result


def copy_images(folder: Path, images: list[tuple[str, str]], out_dir: Path) -> None:
    """Copy the usable images byte for byte (never linking: the source must stay untouched)."""
    for name, _ in images:
        dst = out_dir / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, dst)

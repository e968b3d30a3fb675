"""What a source holds: the walk of a folder, and stage scan's listing of the source.

`walk` yields every file under a folder (symlinks followed only within the source, loops and
unreadable folders reported), one os.scandir per folder. `listing` is what stage raw reads besides
params (each file's path, size and mtime; a CSV's listed files; an .npz), written by stage scan to
data/source.json, a dep of raw: adding, removing or changing an image re-runs raw.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rebalance.config import Params, source_kind
from rebalance.core import paths
from rebalance.dataset import csv_read

LISTING = paths.DATA / "source.json"  # stage scan's listing of the source folder (a dep of raw)


def link_problem(path: Path, root: Path) -> str:
    """Why the symlink `path` cannot be followed ('' if it can, or is no link): broken, or out of `root`."""
    if not path.is_symlink():
        return ""
    target = Path(os.path.realpath(path))
    if not target.exists():
        return f"broken symlink (to {os.readlink(path)})"
    if not target.is_relative_to(root):
        return f"symlink to {target}, outside the source folder"
    return ""


def walk(
    directory: Path, root: Path, _ancestors: tuple[Path, ...] = (), _prefix: str = ""
) -> Iterator[tuple[Path, str, str]]:
    """(path, its path relative to `directory` as posix text, problem) for every file under
    `directory`, depth first in name order, problem '' for a usable one; and the same for what
    cannot be entered or read (a broken symlink or one leading out of `root`, a symlink loop, an
    unreadable folder). Links within `root` are followed. One os.scandir per folder: a file's
    type comes with its folder's listing (no stat per file, 100k+ files are walked in seconds)."""
    here = directory.resolve()
    try:
        with os.scandir(directory) as found:
            entries = sorted(found, key=lambda e: e.name)
    except OSError as err:
        yield directory, _prefix.rstrip("/") or ".", f"cannot list folder ({err.strerror or err})"
        return
    for entry in entries:
        path, rel = directory / entry.name, _prefix + entry.name
        problem = link_problem(path, root) if entry.is_symlink() else ""
        if problem:
            yield path, rel, problem
        elif entry.is_dir():
            if entry.is_symlink() and path.resolve() in (*_ancestors, here):
                yield path, rel, f"symlink loop (to {path.resolve()})"
            else:
                yield from walk(path, root, (*_ancestors, here), rel + "/")
        elif entry.is_file():
            yield path, rel, ""
        else:
            yield path, rel, "not a regular file"


def listing(params: Params, base: Path = Path(".")) -> dict[str, Any]:
    """What stage raw reads besides params: for a folder source every file under it as [path, size,
    mtime_ns] (or [path, problem] for a link that cannot be followed), sorted, and the metadata CSV;
    for a CSV source the CSV, its raw.csv.split_files and every file they list; for an .npz the
    file; for the demo its params. Relative paths are relative to `base` (the repository root)."""
    raw, metadata = params.raw, params.dataset.metadata
    kind = source_kind(raw.source)
    if kind == "demo":
        return {"source": "demo", "demo": raw.demo.model_dump()}
    location = Path(base) / raw.source
    out: dict[str, Any] = {"source": raw.source}
    out["metadata"] = [metadata, *_stat(Path(base) / metadata)] if metadata else None
    if kind in ("csv", "npz"):
        out["file"] = _stat(location)
        lists = raw.csv.split_files if kind == "csv" else {}  # ACNE04's test list beside train's
        if lists:
            out["split_files"] = {s: [f, *_stat(location.parent / f)] for s, f in lists.items()}
        if kind == "csv" and location.is_file():
            rows = sorted(set(csv_read.listed(location, raw.csv)))
            return out | {"files": [[rel, *_stat(location.parent / rel)] for rel in rows]}
        return out
    if not location.is_dir():
        return out | {"files": None}
    files = []
    for path, rel, problem in walk(location, location.resolve()):
        files.append([rel, problem] if problem else [rel, *_stat(path)])
    return out | {"files": files}


def _stat(path: Path) -> list[int | str]:
    try:
        st = path.stat()
    except OSError as err:
        return [f"cannot stat ({err.strerror or err})"]
    return [st.st_size, st.st_mtime_ns]


def listing_text(params: Params, base: Path = Path(".")) -> str:
    """`listing` as the text of data/source.json."""
    return format_listing(listing(params, base))


def format_listing(found: dict[str, Any]) -> str:
    """A listing as JSON text, one file per line (so a diff shows the files that changed)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in found.items() if k != "files"]
    if found.get("files"):
        rows = ",\n".join(f"    {json.dumps(row)}" for row in found["files"])
        lines.append(f'  "files": [\n{rows}\n  ]')
    elif "files" in found:
        lines.append(f'  "files": {json.dumps(found["files"])}')
    return "{\n" + ",\n".join(lines) + "\n}\n"


def listing_current(params: Params, base: Path = Path(".")) -> bool:
    """Whether data/source.json (under `base`) lists the source as it is now (stage scan would
    write the same): `dvc status` cannot tell, it always calls stage scan changed."""
    path = Path(base) / LISTING
    return path.is_file() and path.read_text() == listing_text(params, base)

"""Atomic writes: a reader (or an interrupted run) never sees half an output."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def output_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through, streamed: a temporary file in the same folder,
    renamed to `path` atomically when the block ends (removed if it raises)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename."""
    with output_file(path) as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_figure(path: str | Path, fig) -> None:
    """A matplotlib figure as a PNG without a timestamp or version in its metadata (same bytes each run)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    write_bytes(path, buf.getvalue())


def write_json(path: str | Path, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def stale_temp_dirs(final: str | Path) -> list[Path]:
    """Temporary folders output_dir left beside `final` when its process was killed (SIGKILL, OOM):
    `.<name>.<8 random characters>.tmp` (mkdtemp's names; a write_bytes temporary file is no folder)."""
    final = Path(final)
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}\.tmp")
    if not final.parent.is_dir():
        return []
    return sorted(
        p for p in final.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
    )


@contextlib.contextmanager
def output_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `final`; on success it replaces `final` whole.

    On failure the temporary folder is removed and `final` is left as it was, so an
    interrupted stage can simply be re-run. Temporary folders of a killed earlier run (which
    could not clean up) are removed first; DVC runs one stage at a time, so none is in use.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temp_dirs(final):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def output_entries(folder: str | Path, names: tuple[str, ...]) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `folder`; on success each of `names` written in it
    replaces the entry of that name in `folder`, and nothing else there is touched (a folder other
    outputs share: data/fused holds fuse's splits and manifest beside the card stage document writes).

    Each entry is swapped in by one rename; on failure the temporary folder goes and `folder` is
    left as it was, so an interrupted stage can simply be re-run."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in stale_temp_dirs(folder):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        yield tmp
        missing = [n for n in names if not (tmp / n).exists()]
        if missing:
            raise FileNotFoundError(f"{folder}: output {missing[0]} was not written")
        for name in names:
            final, old = folder / name, folder / f".{name}.old"
            _remove(old)
            if final.exists() or final.is_symlink():
                os.replace(final, old)
            os.replace(tmp / name, final)
            _remove(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link `src` to `dst` (no byte copy); copy only where a link is impossible."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)

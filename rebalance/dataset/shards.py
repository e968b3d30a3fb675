"""The sharded release format (`fuse.format: shards`): each split as WebDataset-compatible tars.

    data/fused/manifest.csv                   one row per sample, as in the per-file tree, plus
                                              shard, key, offset, size (where its bytes are)
    data/fused/<split>/<split>-000000.tar     samples in manifest (path) order:
        <key>.<ext>    the image file's bytes, unchanged (png, jpg, dcm, ...)
        <key>.json     its manifest row (the CONTRACT columns)

A sample's `path` stays the path it has in the per-file tree (train/<class>/<file>), so the
manifest, its invariants and the checksums mean the same in both formats. Tars are written
deterministically (sorted samples, zeroed owner and times, ustar headers): the same inputs give
the same shard bytes, so DVC stores an unchanged shard of a new release only once.

Read with `iterate` (sequential, each tar once), by `read_bytes` / `read_sample`
(random access by the manifest's offset and size: the project's own train and evaluate
stages), as a torch IterableDataset (rebalance.learn.data.ShardStream),
or with the `webdataset` library: `webdataset.WebDataset(sorted(glob("train/train-*.tar")))`.
A stage's own packed output (flips, synthetic images) keeps its tars in `<out>/shards/`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rebalance.core import atomic
from rebalance.core.errors import RebalanceError
from rebalance.core.manifest import COLUMNS, SHARD_COLUMNS
from rebalance.core.progress import progress

FOLDER = "shards"  # a stage's own packed output; a release keeps each split's tars in its split's folder
SHARD_MB = 256  # a stage's own packed output (flips, synthetic images): tars of at most this size
SPLITS = ("train", "val", "test")
TAR_FORMAT = tarfile.USTAR_FORMAT


def is_sharded(fused: pd.DataFrame) -> bool:
    """A manifest of the sharded format (its rows name their shard)."""
    return "shard" in fused.columns and bool(len(fused)) and (fused.shard != "").all()


def extension(path: str) -> str:
    """The sample's image extension (lower case, no dot): what a WebDataset decoder keys on."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix or "bin"


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def sample_json(row: dict) -> bytes:
    return json.dumps({c: row[c] for c in COLUMNS}, sort_keys=True).encode()


class Writer:
    """Samples (a manifest row, its image bytes), in the order added, into tars
    `<out>/<folder>/<prefix>-000000.tar`, ...: a new tar once the next sample would take the current
    one past `shard_mb` (a tar is never empty), each streamed to a temporary file and renamed into
    place when it is complete (memory flat in the data size; after an error none is left).
    Deterministic: the same samples in the same order give the same bytes. `rows` holds each row
    with its shard, key, offset and size. Use as a context manager."""

    def __init__(self, out: Path, prefix: str, shard_mb: float, folder: str = FOLDER):
        self.out, self.prefix, self.folder, self.limit = Path(out), prefix, folder, shard_mb * 2**20
        self.rows: list[dict] = []
        self._shard, self._used = -1, 0
        self._tar: tarfile.TarFile | None = None
        self._open = contextlib.ExitStack()  # the current tar and its temporary file

    def add(self, row: dict, data: bytes) -> None:
        need = 3 * 512 + len(data) + 1024  # headers + image + JSON, roughly
        if self._tar is None or (self._used and self._used + need > self.limit):
            self._next()
        self._used += need
        key = f"{len(self.rows):08d}"
        r = {**row, "shard": self._name(), "key": key}
        info = _member(f"{key}.{extension(r['path'])}", len(data))
        r["offset"], r["size"] = self._tar.offset + len(info.tobuf(TAR_FORMAT)), len(data)
        self._tar.addfile(info, io.BytesIO(data))
        meta = sample_json(r)
        self._tar.addfile(_member(f"{key}.json", len(meta)), io.BytesIO(meta))
        self.rows.append(r)

    def _next(self) -> None:
        self._open.close()  # the previous tar complete: renamed into place
        self._shard, self._used = self._shard + 1, 0
        f = self._open.enter_context(atomic.output_file(self.out / self._name()))
        self._tar = self._open.enter_context(tarfile.open(fileobj=f, mode="w", format=TAR_FORMAT))

    def _name(self) -> str:
        """The current tar's path relative to `out` (the manifest's `shard`)."""
        return f"{self.folder}/{self.prefix}-{self._shard:06d}.tar"

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *error) -> None:
        self._open.__exit__(*error)  # an error removes the temporary file of the tar being written


def write(fused: pd.DataFrame, files: dict[str, Path | Packed], out: Path, shard_mb: float) -> pd.DataFrame:
    """Write the shards of `fused` (file of each path in `files`) under `out`: per split, samples by
    path, in `out/<split>/<split>-NNNNNN.tar`; the manifest rows (by path) with shard, key, offset
    and size of each image (its bytes inside the tar)."""
    ordered = [
        r
        for split in SPLITS
        for r in fused[fused.split == split].sort_values("path", kind="stable").to_dict("records")
    ]
    with contextlib.ExitStack() as stack:
        writers = {split: stack.enter_context(Writer(out, split, shard_mb, folder=split)) for split in SPLITS}
        for r in progress(ordered, "fuse: shards", total=len(ordered)):
            writers[r["split"]].add({c: r[c] for c in COLUMNS}, files[r["path"]].read_bytes())
    return table([r for w in writers.values() for r in w.rows])


def table(rows: list[dict]) -> pd.DataFrame:
    """Writer rows as a manifest frame: the CONTRACT columns and SHARD_COLUMNS, strings, by path."""
    df = pd.DataFrame(rows, columns=[*COLUMNS, *SHARD_COLUMNS]).sort_values("path", kind="stable")
    return df.astype({"offset": int, "size": int}).astype(str).reset_index(drop=True)


def read_sample(shard: Path, offset: int, size: int, path: str, fd: int | None = None) -> bytes:
    """The `size` image bytes at `offset` of `shard` (sample `path`), by one positioned read.
    `fd`: an open descriptor of the shard to reuse (a training loop reads thousands of samples;
    a positioned read is safe in forked DataLoader workers sharing it)."""
    if fd is None:
        with open(shard, "rb") as f:
            data = os.pread(f.fileno(), size, offset)
    else:
        data = os.pread(fd, size, offset)
    if len(data) != size:
        raise RebalanceError(f"{shard}: truncated at sample {path}; `dvc pull` it again")
    return data


def read_bytes(folder: Path, row) -> bytes:
    """The image bytes of one manifest row (a dict or a DataFrame row tuple) of a release at
    `folder`, in either format."""
    return source(folder, row).read_bytes()


@dataclass(frozen=True)
class Packed:
    """An image kept inside a shard (a sharded release's sample, a flip), read like a file."""

    shard: Path
    offset: int
    size: int
    path: str  # its manifest path (named in errors)

    def read_bytes(self) -> bytes:
        return read_sample(self.shard, self.offset, self.size, self.path)


def source(folder: Path, row) -> Path | Packed:
    """Where the bytes of one manifest row (a dict or a DataFrame row tuple) of `folder` are: its
    file, or its place in a shard."""
    get = row.get if isinstance(row, dict) else lambda name, default=None: getattr(row, name, default)
    path, shard = get("path"), get("shard", "")
    if shard:
        return Packed(Path(folder) / shard, int(get("offset")), int(get("size")), path)
    return Path(folder) / path


def shard_files(folder: Path, split: str | None = None) -> list[Path]:
    """The shards of a release (of one split), in order: `<split>/<split>-NNNNNN.tar`."""
    return [
        shard
        for s in ([split] if split else SPLITS)
        for shard in sorted((Path(folder) / s).glob(f"{s}-*.tar"))
    ]


def iterate_shard(shard: Path) -> Iterator[tuple[dict, bytes]]:
    """(manifest row, image bytes) of every sample of one shard, reading the tar once, in order."""
    with tarfile.open(shard, mode="r:") as tar:
        pending: dict[str, dict] = {}
        for info in tar:
            key, _, ext = info.name.partition(".")
            sample = pending.setdefault(key, {})
            sample[ext] = tar.extractfile(info).read()
            if len(sample) == 2:
                meta = json.loads(sample.pop("json"))
                yield meta, next(iter(sample.values()))
                del pending[key]
        if pending:
            raise RebalanceError(f"{shard}: sample {next(iter(pending))} is incomplete; `dvc pull` it again")


def iterate(folder: Path, split: str | None = None) -> Iterator[tuple[dict, bytes]]:
    """(manifest row, image bytes) of every sample of a sharded release (of one split), shard by
    shard: a consumer's loop (no manifest needed). See rebalance.learn.data.ShardStream for torch."""
    for shard in shard_files(folder, split):
        yield from iterate_shard(shard)

"""The sharded release format (`fuse.format: shards`): each split as WebDataset-compatible tars.

    data/fused/manifest.csv                   one row per sample, as in the per-file tree, plus
                                              shard, key, offset, size (where its bytes are)
    data/fused/shards/<split>-000000.tar      samples in manifest (path) order:
        <key>.<ext>    the image file's bytes, unchanged (png, jpg, dcm, ...)
        <key>.json     its manifest row (the CONTRACT columns)

A sample's `path` stays the path it has in the per-file tree (train/<class>/<file>), so the
manifest, its invariants and the checksums mean the same in both formats. Tars are written
deterministically (sorted samples, zeroed owner and times, ustar headers): the same inputs give
the same shard bytes, so DVC stores an unchanged shard of a new release only once.

Read with `iterate` (sequential, each tar once), by `read_bytes` / `read_sample`
(random access by the manifest's offset and size: the project's own train and evaluate
stages), as a torch IterableDataset (stages.learn.data.ShardStream),
or with the `webdataset` library: `webdataset.WebDataset(sorted(glob("shards/train-*.tar")))`.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from stages.core import atomic
from stages.core.errors import RebalanceError
from stages.core.manifest import COLUMNS, SHARD_COLUMNS
from stages.core.progress import progress

FOLDER = "shards"
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


def plan(fused: pd.DataFrame, sizes: dict[str, int], shard_mb: float) -> pd.DataFrame:
    """Rows in output order with their shard and key: per split, samples by path, a new shard
    once the next sample would take the current one past `shard_mb` (a shard is never empty)."""
    limit = shard_mb * 2**20
    out = []
    for split in SPLITS:
        rows = fused[fused.split == split].sort_values("path", kind="stable")
        shard, used = 0, 0
        for i, r in enumerate(rows.itertuples(index=False)):
            need = 3 * 512 + sizes[r.path] + 1024  # headers + image + JSON, roughly
            if used and used + need > limit:
                shard, used = shard + 1, 0
            used += need
            out.append({**r._asdict(), "shard": f"{FOLDER}/{split}-{shard:06d}.tar", "key": f"{i:08d}"})
    return pd.DataFrame(out, columns=[*COLUMNS, "shard", "key"])


def sample_json(row: dict) -> bytes:
    return json.dumps({c: row[c] for c in COLUMNS}, sort_keys=True).encode()


def write(fused: pd.DataFrame, files: dict[str, Path], out: Path, shard_mb: float) -> pd.DataFrame:
    """Write the shards of `fused` (file of each path in `files`) under `out`; the manifest rows
    (by path) with shard, key, offset and size of each image (its bytes inside the tar)."""
    sizes = {p: files[p].stat().st_size for p in fused.path}
    rows = plan(fused, sizes, shard_mb).to_dict("records")
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    by_shard: dict[str, list[dict]] = {}
    for r in rows:
        by_shard.setdefault(r["shard"], []).append(r)
    for shard, members in progress(by_shard.items(), "fuse: shards", total=len(by_shard), unit="shard"):
        # streamed into a temporary file (memory flat in shard_mb), renamed into place at the end
        with (
            atomic.output_file(out / shard) as f,
            tarfile.open(fileobj=f, mode="w", format=TAR_FORMAT) as tar,
        ):
            for r in members:
                data = files[r["path"]].read_bytes()
                info = _member(f"{r['key']}.{extension(r['path'])}", len(data))
                r["offset"], r["size"] = tar.offset + len(info.tobuf(TAR_FORMAT)), len(data)
                tar.addfile(info, io.BytesIO(data))
                meta = sample_json(r)
                tar.addfile(_member(f"{r['key']}.json", len(meta)), io.BytesIO(meta))
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
    get = row.get if isinstance(row, dict) else lambda name, default=None: getattr(row, name, default)
    path, shard = get("path"), get("shard", "")
    if not shard:
        return (Path(folder) / path).read_bytes()
    return read_sample(Path(folder) / shard, int(get("offset")), int(get("size")), path)


def shard_files(folder: Path, split: str | None = None) -> list[Path]:
    """The shards of a release (of one split), in order."""
    pattern = f"{split}-*.tar" if split else "*.tar"
    return sorted((Path(folder) / FOLDER).glob(pattern))


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
    shard: a consumer's loop (no manifest needed). See stages.learn.data.ShardStream for torch."""
    for shard in shard_files(folder, split):
        yield from iterate_shard(shard)

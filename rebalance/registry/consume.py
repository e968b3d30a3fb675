"""One line from a release to a torch Dataset: `open_release(repo, rev, split)`.

Reads a revision of a registry through DVC's Python API (`dvc.api.DVCFileSystem`): the manifest
`data/fused/manifest.csv` and the class order `dataset.classes` of `params.yaml` at that revision,
then the images, fetched from the DVC remote on demand (nothing is pulled into a workspace). Every
item is `(image, label_index, row)`: the image as a PIL image (RGB or L, EXIF orientation applied;
`transform(image)` when a transform is given), the label's position in `dataset.classes`, and the
image's manifest row as a dict of strings.

- A per-file release gives a map-style `ReleaseFiles` (random access, any sampler).
- A sharded release (`fuse.format: shards`) gives an iterable `ReleaseShards` that streams each tar
  of the split once, in manifest order; under a DataLoader with workers, each worker streams its
  own share of the tars. Only the manifest's `shard` column says where the tars are.

Both hold the split's manifest rows (`.rows`) and the class order (`.classes`), and open the
filesystem lazily, once per process: they pickle as their arguments, so DataLoader workers (fork or
spawn) open their own.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import yaml
from PIL import Image, ImageOps
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from rebalance.core import images, paths
from rebalance.core.errors import MAX_PIXELS, RebalanceError
from rebalance.core.manifest import COLUMNS, FILENAME, SHARD_COLUMNS
from rebalance.registry.git import one_line

FUSED = paths.FUSED.as_posix()
MANIFEST = f"{FUSED}/{FILENAME}"
SPLITS = ("train", "val", "test")


class Revision:
    """One revision of a registry as a DVC filesystem, opened on first use in each process (a
    DataLoader worker opens its own); it pickles as its arguments."""

    def __init__(
        self,
        repo: str,
        rev: str | None = None,
        remote: str | None = None,
        remote_config: dict | None = None,
    ) -> None:
        self.repo, self.rev, self.remote, self.remote_config = str(repo), rev, remote, remote_config
        self.commit: str | None = None  # `rev` resolved (`pin`): every process reads the same commit
        self._fs: Any = None
        self._pid: int | None = None
        self._inherited: Any = None  # a forked parent's filesystem: kept, never closed here

    @property
    def where(self) -> str:
        return f"{self.repo}@{self.rev}" if self.rev else self.repo

    @property
    def fs(self):
        if self._fs is None or self._pid != os.getpid():
            from dvc.api import DVCFileSystem

            if self._fs is not None:
                self._inherited = self._fs
            self._fs = DVCFileSystem(
                self.repo, rev=self.commit or self.rev, remote=self.remote, remote_config=self.remote_config
            )
            self._pid = os.getpid()
        return self._fs

    def pin(self) -> None:
        """Resolve `rev` (a tag, a branch) to its commit, once read from: a branch that moves on
        meanwhile changes nothing, and a worker opening its own filesystem fetches nothing more."""
        if self.rev is not None and self.commit is None:
            try:
                self.commit = self.fs.repo.get_rev()
            except Exception:  # noqa: BLE001 - then each process resolves `rev` itself
                self.commit = None

    def read(self, path: str) -> bytes:
        """The bytes of `path` (relative to the repository root) at this revision."""
        with self.errors(path), self.fs.open(path, "rb") as f:
            return f.read()

    def open(self, path: str):
        """`path` opened for reading (errors while reading it are the caller's to report)."""
        with self.errors(path):
            return self.fs.open(path, "rb")

    @contextlib.contextmanager
    def errors(self, path: str) -> Iterator[None]:
        """A missing revision or path, or an unreachable remote, as a one-line RebalanceError."""
        try:
            yield
        except RebalanceError:
            raise
        except FileNotFoundError:
            raise RebalanceError(self._missing(path)) from None
        except Exception as err:  # noqa: BLE001 - DVC, git and the remote's client raise many types
            raise RebalanceError(self._failure(err, path)) from None

    def _missing(self, path: str) -> str:
        try:
            tracked = bool(self.fs.info(path).get("md5"))  # its hash is in that revision's dvc.lock
        except Exception:  # noqa: BLE001 - not there at all
            tracked = False
        if tracked:  # the revision names its data, but no cache or remote reached holds it
            return self._not_stored(path)
        return f"{self.where}: no {path}; is this a release of the registry (see `rebalance releases`)?"

    def _not_stored(self, path: str) -> str:
        remote = f" {self.remote!r}" if self.remote else ""
        return (
            f"{self.where}: {path} is not in the DVC remote{remote} (nor in a local cache); "
            "`dvc push` it there, or pass `remote=` / `remote_config=` for the remote that has it"
        )

    def _failure(self, err: Exception, path: str) -> str:
        from dvc.scm import CloneError, RevError
        from dvc_data.index import DataIndexDirError

        if isinstance(err, RevError):
            return f"{self.repo}: unknown revision {self.rev!r}; see `git ls-remote --tags {self.repo}`"
        if isinstance(err, DataIndexDirError):  # a tracked folder whose listing no cache or remote has
            return self._not_stored(path)
        if isinstance(err, CloneError):
            return f"{self.repo}: cannot clone it ({one_line(err)}); check the URL and your access to it"
        return (
            f"{self.where}: cannot read {path} ({type(err).__name__}: {one_line(err)}); check the "
            "repository URL, the revision and access to its DVC remote (credentials, `remote=`)"
        )

    def close(self) -> None:
        """Release the filesystem this process opened (the next use opens it again)."""
        if self._fs is not None and self._pid == os.getpid():
            self._fs.close()
        self._fs = self._pid = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fs": None, "_pid": None, "_inherited": None}


def decode(path: str, data: bytes) -> Image.Image:
    """An image file's bytes as stored: RGB or L, EXIF orientation applied. Other modes (alpha,
    palette, 16-bit, DICOM) are read as the project's stages read them: alpha on black as RGB,
    16-bit windowed to L; an unreadable file is a BadImageError naming `path`."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode in ("RGB", "L") and im.width * im.height <= MAX_PIXELS:
                return ImageOps.exif_transpose(im)  # a new, loaded image
    except Exception:  # noqa: BLE001 - `images.decode` below says what is wrong with it
        pass
    return images.decode(path, data=data)[0]


class _Release:
    """What both kinds share: the revision, the split's rows, the class order and decoding."""

    def __init__(
        self, revision: Revision, rows: pd.DataFrame, classes: list[str], split: str | None, transform
    ) -> None:
        self.revision, self.rows, self.classes, self.split = revision, rows, list(classes), split
        self.transform: Callable | None = transform
        self._index = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.rows)

    def _item(self, row: dict, data: bytes) -> tuple[Any, int, dict]:
        image = decode(row["path"], data)
        if self.transform is not None:
            image = self.transform(image)
        return image, self._index[row["label"]], row

    def close(self) -> None:
        self.revision.close()

    def __repr__(self) -> str:
        split = self.split or "all splits"
        return f"{type(self).__name__}({self.revision.where}, {split}: {len(self)} images)"


class ReleaseFiles(_Release, Dataset):
    """A per-file release: item i is `(image, label_index, row)` of the i-th manifest row of the
    split, each file read through the DVC filesystem when asked for."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._records = self.rows.to_dict("records")

    def __getitem__(self, i: int) -> tuple[Any, int, dict]:
        row = self._records[i]
        return self._item(dict(row), self.revision.read(f"{FUSED}/{row['path']}"))


class ReleaseShards(_Release, IterableDataset):
    """A sharded release: `(image, label_index, row)` of every sample of the split, each tar
    streamed once from start to end, tars in manifest order. Under a DataLoader with workers,
    worker k streams tars k, k + workers, ... (so with workers the order interleaves)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shards = list(dict.fromkeys(self.rows["shard"]))  # the split's tars, in manifest order
        self._by_path = {r["path"]: r for r in self.rows.to_dict("records")}

    def __iter__(self) -> Iterator[tuple[Any, int, dict]]:
        shards = self.shards
        info = get_worker_info()
        if info is not None:
            shards = shards[info.id :: info.num_workers]
        for shard in shards:
            for row, data in self._samples(shard):
                yield self._item(row, data)

    def _samples(self, shard: str) -> Iterator[tuple[dict, bytes]]:
        """(manifest row, image bytes) of each sample of one tar of this split, in tar order."""
        name = f"{FUSED}/{shard}"
        pending: dict[str, dict[str, bytes]] = {}
        try:
            with self.revision.open(name) as f, tarfile.open(fileobj=f, mode="r|") as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    key, _, ext = info.name.partition(".")
                    sample = pending.setdefault(key, {})
                    sample[ext] = tar.extractfile(info).read()
                    if len(sample) < 2 or "json" not in sample:
                        continue
                    meta = json.loads(sample.pop("json"))
                    del pending[key]
                    row = self._by_path.get(meta.get("path"))
                    if row is not None:
                        yield dict(row), next(iter(sample.values()))
        except (tarfile.TarError, OSError) as err:
            raise RebalanceError(
                f"{self.revision.where}: cannot read {name} ({one_line(err)}); damaged, or a failed download"
            ) from None
        if pending:
            raise RebalanceError(f"{self.revision.where}: {name}: sample {next(iter(pending))} is incomplete")


def _classes(revision: Revision) -> list[str]:
    try:
        params = yaml.safe_load(revision.read(paths.PARAMS.as_posix())) or {}
        classes = params["dataset"]["classes"]
    except (yaml.YAMLError, KeyError, TypeError):
        classes = None
    if not isinstance(classes, list) or not classes:
        raise RebalanceError(
            f"{revision.where}: params.yaml names no dataset.classes; not a registry revision?"
        )
    return [str(c) for c in classes]


def _manifest(revision: Revision) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.BytesIO(revision.read(MANIFEST)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RebalanceError(f"{revision.where}: {MANIFEST} is not a manifest ({one_line(err)})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise RebalanceError(f"{revision.where}: {MANIFEST} lacks columns {missing}; not a release manifest")
    return df[COLUMNS + [c for c in SHARD_COLUMNS if c in df.columns]]


def open_release(
    repo: str,
    rev: str | None = None,
    split: str | None = "train",
    *,
    transform: Callable | None = None,
    remote: str | None = None,
    remote_config: dict | None = None,
) -> ReleaseFiles | ReleaseShards:
    """A release of a registry as a torch Dataset of `(image, label_index, row)`.

    `repo`: the registry's git URL or local path; `rev`: a release tag (`acne04@v1.2.0`) or any git
    revision (default: the workspace of a local path, the default branch of a URL); `split`:
    train, val or test, or None for every row. `transform` is applied to each PIL image. `remote`
    and `remote_config` choose and configure the DVC remote to read from (default: the registry's
    own default remote at that revision; credentials as DVC takes them, e.g. `AWS_*` variables).

    A per-file release gives a map-style `ReleaseFiles`, a sharded one an iterable
    `ReleaseShards`; both have `len()`, `.rows` (the split's manifest rows) and `.classes`.
    """
    if split is not None and split not in SPLITS:
        raise RebalanceError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}, or None for all")
    revision = Revision(repo, rev, remote, remote_config)
    classes = _classes(revision)
    df = _manifest(revision)
    revision.pin()
    rows = (df if split is None else df[df.split == split]).reset_index(drop=True)
    unknown = sorted(set(rows.label) - set(classes))
    if unknown:
        raise RebalanceError(
            f"{revision.where}: labels {unknown} of {MANIFEST} are not in dataset.classes {classes}"
        )
    sharded = "shard" in rows.columns and bool(len(rows)) and bool((rows["shard"] != "").all())
    kind = ReleaseShards if sharded else ReleaseFiles
    if not sharded:
        rows = rows.drop(columns=[c for c in SHARD_COLUMNS if c in rows.columns])
    return kind(revision, rows, classes, split, transform)

"""Images for the classifier, streamed: a torch Dataset that decodes on access, and DataLoaders
that decode in worker processes. Memory stays flat in the size of the dataset.

The order of the training batches is drawn up front from the run's seed (`batch_order`), so the
DataLoader can prefetch them and a run is the same whatever the number of workers or the device.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from rebalance.core import paths
from rebalance.core.device import CPU, Runtime
from rebalance.core.images import load_array
from rebalance.core.progress import progress
from rebalance.dataset import shards

Span = tuple[str, int, int]  # a sample of a sharded release: (shard, byte offset, size)


class ImageSet(Dataset):
    """Files `folder/name` as uint8 3 x size x size tensors, decoded when asked for, brought to
    the size by `fit` (dataset.fit). With `spans`, image i is the bytes spans[i] of a shard under
    `folder` (names[i] names it)."""

    def __init__(
        self, folder: str | Path, names: list[str], size: int, fit: str, spans: list[Span] | None = None
    ):
        self.folder, self.names, self.size, self.fit, self.spans = Path(folder), list(names), size, fit, spans
        self._fds: dict[str, int] = {}  # shard -> open descriptor, reused for every sample

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self) -> dict:  # to a spawned worker: without this process's descriptors
        return {**self.__dict__, "_fds": {}}

    def close(self) -> None:
        """Close the shard descriptors this process opened (a later read opens them again)."""
        while self._fds:
            os.close(self._fds.popitem()[1])

    def __del__(self) -> None:  # a forked worker's copies are its own: closing them is safe
        if getattr(self, "_fds", None) and os is not None:
            self.close()

    def _bytes(self, i: int) -> bytes | None:
        if self.spans is None:
            return None
        shard, offset, size = self.spans[i]
        if shard not in self._fds:
            self._fds[shard] = os.open(self.folder / shard, os.O_RDONLY)
        return shards.read_sample(self.folder / shard, offset, size, self.names[i], fd=self._fds[shard])

    def __getitem__(self, i: int) -> torch.Tensor:
        array = load_array(self.folder / self.names[i], self.size, self.fit, data=self._bytes(i))
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class ShardStream(IterableDataset):
    """(manifest row, image bytes) of every sample of a sharded release at `folder` (of one
    split), each shard read once from start to end; under a DataLoader with workers, worker k
    reads shards k, k + workers, ... A consumer's loader (see rebalance/dataset/shards.py)."""

    def __init__(self, folder: str | Path, split: str | None = None):
        self.folder, self.split = Path(folder), split

    def __iter__(self):
        files = shards.shard_files(self.folder, self.split)
        info = get_worker_info()
        if info is not None:
            files = files[info.id :: info.num_workers]
        for shard in files:
            yield from shards.iterate_shard(shard)


class TensorSet(Dataset):
    """Images already in memory (N x 3 x H x W uint8): tests and small tools."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        """A whole batch in one indexing (DataLoader's batched fetch; `loader` passes it through).
        Contiguous, as stacking single images gives: indexing a permuted view (N x H x W x 3 seen
        as N x 3 x H x W) would keep its channels-last strides, and convolutions on those take
        another path with other float results."""
        return self.images[indices].contiguous()


def image_set(
    folder: str | Path, names: list[str], size: int, fit: str, in_memory_mb: float,
    spans: list[Span] | None = None,
) -> Dataset:  # fmt: skip
    """The images as a Dataset, brought to size x size by `fit` (dataset.fit): decoded once into
    memory when they take at most `in_memory_mb` (uint8 at `size`), else an ImageSet streamed from
    the files (compute.in_memory_mb). Both give the same pixels, so the same results. `spans`: the
    images are samples of shards (ImageSet)."""
    if len(names) * size * size * 3 > in_memory_mb * 2**20:
        return ImageSet(folder, names, size, fit, spans=spans)
    stream = ImageSet(folder, names, size, fit, spans=spans)
    images = torch.empty((len(names), 3, size, size), dtype=torch.uint8)  # filled in place: one copy
    for i in progress(range(len(stream)), f"decode {Path(folder).name} into memory", total=len(stream)):
        images[i] = stream[i]
    return TensorSet(images)


def fused_set(
    rows: pd.DataFrame, size: int, fit: str, in_memory_mb: float, folder: str | Path = paths.FUSED
) -> Dataset:
    """The images of manifest `rows` of `folder` (a release, data/fused, or data/synthesized),
    per-file or packed in shards alike."""
    spans = None
    if shards.is_sharded(rows):
        spans = [(r.shard, int(r.offset), int(r.size)) for r in rows.itertuples()]
    return image_set(folder, list(rows.path), size, fit, in_memory_mb, spans)


FOLDERS = {"fused": paths.FUSED, "synthesized": paths.SYNTHESIZED}  # a training row's `folder`


class Mirrored(Dataset):
    """Another Dataset's images flipped left-right (a flip stage's flip, made when read)."""

    def __init__(self, images: Dataset):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].flip(-1)


def training_set(rows: pd.DataFrame, size: int, fit: str, in_memory_mb: float) -> Dataset:
    """The images of a variant's training rows, in order: fused_set of data/fused, or, where rows
    carry `folder` and `mirror` (variants.unfiltered_rows), of each run of rows from one folder,
    mirrored where asked. All in memory: one TensorSet."""
    if "folder" not in rows.columns:
        return fused_set(rows, size, fit, in_memory_mb)
    runs = (rows[["folder", "mirror"]] != rows[["folder", "mirror"]].shift()).any(axis=1).cumsum()
    sets = []
    for _, run in rows.groupby(runs, sort=False):
        run = run.dropna(axis=1, how="all")  # shard columns of one folder only
        images = fused_set(run, size, fit, in_memory_mb, FOLDERS[run.folder.iloc[0]])
        if run.mirror.iloc[0]:
            images = TensorSet(images.images.flip(-1)) if isinstance(images, TensorSet) else Mirrored(images)
        sets.append(images)
    if all(isinstance(d, TensorSet) for d in sets):
        return TensorSet(torch.cat([d.images for d in sets]))
    return torch.utils.data.ConcatDataset(sets)


def as_dataset(data: Dataset | torch.Tensor) -> Dataset:
    return TensorSet(data) if isinstance(data, torch.Tensor) else data


def batch_order(n: int, steps: int, batch_size: int, gen: torch.Generator) -> list[list[int]]:
    """`steps` batches of indices: a fresh permutation per pass, the last partial batch dropped."""
    batches: list[list[int]] = []
    while len(batches) < steps:
        order = torch.randperm(n, generator=gen).tolist()
        batches += [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    return batches[:steps]


def loader(data: Dataset, batches: list[list[int]], runtime: Runtime = CPU) -> DataLoader:
    """Batches in the given order, decoded by `runtime.workers` processes (0: in this one; always
    0 for images already in memory, where workers would only add copying)."""
    in_memory = isinstance(data, TensorSet)
    return DataLoader(
        data,
        batch_sampler=batches,
        num_workers=0 if in_memory else runtime.workers,
        collate_fn=_whole_batch if in_memory else None,
        pin_memory=runtime.device.type == "cuda",
        persistent_workers=False,
    )


def _whole_batch(batch: torch.Tensor) -> torch.Tensor:
    """TensorSet.__getitems__ already gives the batch as one tensor."""
    return batch


def sequential(n: int, batch_size: int) -> list[list[int]]:
    """Batches 0..n-1 in order (prediction)."""
    return [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]

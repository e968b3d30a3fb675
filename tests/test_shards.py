"""The sharded release format (fuse.format: shards): deterministic tars and every reader (a
consumer's `dvc import` of a sharded release: tests/test_open_release.py, on its sharded release)."""

from __future__ import annotations

import gc
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rebalance.core import manifest
from rebalance.core.errors import RebalanceError
from rebalance.dataset import shards
from rebalance.learn.data import ShardStream, fused_set


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def release_tree(tmp: Path, n: int = 6, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Path]]:
    """A small per-file release: PNG and JPEG, RGB and grey, odd names (dots), three splits."""
    rng = np.random.default_rng(seed)
    rows, files = [], {}
    for split in ("train", "val", "test"):
        for i in range(n):
            label = f"c{i % 2}"
            name = f"img.{i}.v2.jpg" if i % 3 == 0 else f"img_{i}.png"
            path = f"{split}/{label}/{name}"
            f = tmp / "tree" / path
            f.parent.mkdir(parents=True, exist_ok=True)
            shape = (12 + i, 16, 3) if i % 2 else (16, 16)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(f)
            files[path] = f
            rows.append(manifest.row(path=path, split=split, label=label, origin="real", source=path,
                                     root=path, sha256=sha(f.read_bytes())))  # fmt: skip
    return manifest.frame(rows), files


def test_shards_are_deterministic_and_every_reader_agrees(tmp_path: Path):
    fused, files = release_tree(tmp_path)
    a = shards.write(fused, files, tmp_path / "a", shard_mb=0.004)
    manifest.write(a, tmp_path / "a" / "manifest.csv")
    shards.write(fused.sample(frac=1, random_state=3), files, tmp_path / "b", shard_mb=0.004)
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").glob("*/*.tar"))
    assert len(names) > 3 and {n.split("/")[0] for n in names} == {"train", "val", "test"}
    for n in names:  # same inputs (in any order) -> same bytes: DVC stores an unchanged shard once
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()

    m = manifest.read(tmp_path / "a" / "manifest.csv")
    assert shards.is_sharded(m) and list(m.path) == list(fused.path)
    for r in m.itertuples():  # random access by offset and size
        assert sha(shards.read_bytes(tmp_path / "a", r)) == r.sha256
    seen = {meta["path"]: (meta, data) for meta, data in shards.iterate(tmp_path / "a")}
    assert set(seen) == set(m.path)
    for r in m.itertuples():  # sequential reading: the sample's JSON is its manifest row
        meta, data = seen[r.path]
        assert sha(data) == r.sha256 and meta == {c: getattr(r, c) for c in manifest.COLUMNS}

    loader = torch.utils.data.DataLoader(ShardStream(tmp_path / "a", "train"), batch_size=None, num_workers=2)
    assert sorted(meta["path"] for meta, _ in loader) == sorted(m.path[m.split == "train"])

    wds = pytest.importorskip("webdataset")  # the WebDataset library reads them as they are
    urls = [str(p) for p in shards.shard_files(tmp_path / "a")]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == len(m)
    for s in samples:
        meta = json.loads(s["json"]) if isinstance(s["json"], bytes) else s["json"]
        image = s.get("png", s.get("jpg"))
        assert image is not None and image.ndim == 3 and meta["path"] in seen


def test_fused_set_gives_the_same_pixels_from_shards_and_files(tmp_path: Path):
    fused, files = release_tree(tmp_path)
    sharded = shards.write(fused, files, tmp_path / "s", shard_mb=0.004)
    for budget in (0, 512):  # streamed and decoded once
        x_files = fused_set(fused, 16, "stretch", budget, folder=tmp_path / "tree")
        x_shards = fused_set(sharded, 16, "stretch", budget, folder=tmp_path / "s")
        assert len(x_files) == len(x_shards) == len(fused)
        for i in range(len(fused)):
            assert torch.equal(x_files[i], x_shards[i])
    streamed = fused_set(sharded, 16, "stretch", 0, folder=tmp_path / "s")
    expected = torch.stack([streamed[i] for i in range(len(streamed))])  # opens its shards' descriptors
    for context in ("fork", "spawn"):  # workers inherit the open descriptors, or start without them
        loader = torch.utils.data.DataLoader(
            streamed, batch_size=3, num_workers=2, multiprocessing_context=context
        )
        assert torch.equal(torch.cat(list(loader)), expected)
    del loader  # its workers' pipes close now, not between the counts below (a CI run saw that)
    gc.collect()
    opened = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    held = opened()
    streamed.close()  # the descriptors this process opened for its shards
    assert 0 < held - opened() == len(sharded.shard.unique())
    assert torch.equal(streamed[0], expected[0]) and opened() == held - len(sharded.shard.unique()) + 1
    del streamed  # the last reference: the set closes what it holds
    assert opened() == held - len(sharded.shard.unique())


def test_an_interrupted_shard_writer_leaves_no_tar(tmp_path: Path):
    """A stage stopped while packing (an error, a kill's exception) leaves neither a half tar nor
    its temporary file; the tars completed before stay whole."""
    with pytest.raises(KeyboardInterrupt):
        with shards.Writer(tmp_path, "flip", shard_mb=0.004) as writer:
            for i in range(6):
                writer.add(manifest.row(path=f"train/c/{i}_flip.png", split="train"), bytes(1500))
            raise KeyboardInterrupt
    left = sorted(p.name for p in (tmp_path / shards.FOLDER).iterdir())
    assert left and all(name.startswith("flip-") and name.endswith(".tar") for name in left)
    done = shards.table(writer.rows)
    complete = done[done.shard.isin([f"{shards.FOLDER}/{n}" for n in left])]
    assert 0 < len(complete) < 6  # the last tar, being written, is gone
    for r in complete.itertuples():
        assert shards.source(tmp_path, r).read_bytes() == bytes(1500)


def test_a_damaged_shard_is_refused(tmp_path: Path):
    fused, files = release_tree(tmp_path, n=2)
    m = shards.write(fused, files, tmp_path / "a", shard_mb=1)
    last = m.iloc[-1]
    shard = tmp_path / "a" / last.shard
    shard.write_bytes(shard.read_bytes()[: int(last.offset) + 10])  # cut inside the last image
    with pytest.raises(RebalanceError, match="truncated"):
        shards.read_bytes(tmp_path / "a", last)
    with pytest.raises(Exception):  # noqa: B017 - tarfile's own error for a cut archive
        list(shards.iterate(tmp_path / "a", last.split))

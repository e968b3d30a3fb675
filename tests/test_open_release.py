"""`rebalance.open_release`: a release as a torch Dataset, read through DVC's filesystem API.

The fast tests need no build (one makes a small registry by hand: `dvc add` of a release folder).
The slow ones share one module-scoped registry made from the registry tests' builds: release
v1.0.0 in the per-file format, then a build fused as shards (another split seed) released as
v1.1.0. Every item is checked against the manifest read with pandas and against the pixels of the
file (or the tar sample) in the registry's workspace; one test reads both releases from a bare
clone whose data is only in an S3 remote (moto on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import commit_all, copy_built, run
from PIL import Image, ImageOps
from test_registry import (  # noqa: F401 - builds, moto_s3: fixtures
    NAME,
    builds,
    dvc,
    home_env,
    moto_s3,
    rebalance,
    registry_copy,
)

import rebalance as package
from rebalance.core import manifest
from rebalance.core.errors import RebalanceError
from rebalance.dataset import shards
from rebalance.registry.consume import ReleaseFiles, ReleaseShards, open_release

FILES_TAG, SHARDS_TAG = f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"


def small_tensor(image: Image.Image) -> torch.Tensor:
    """A transform (module level: DataLoader workers may pickle it): 8x8 RGB uint8, channels first."""
    return torch.from_numpy(np.array(image.convert("RGB").resize((8, 8)))).permute(2, 0, 1)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def stored(data_or_path) -> np.ndarray:
    """The pixels of an image file (or its bytes) as stored, EXIF orientation applied."""
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(source) as im:
        return np.asarray(ImageOps.exif_transpose(im))


def read_manifest(folder: Path, split: str | None) -> pd.DataFrame:
    df = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    return (df if split is None else df[df.split == split]).reset_index(drop=True)


def one_line_error(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(RebalanceError, match=match) as err:
        call(*args, **kwargs)
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# --------------------------------------------------------------------------- fast


def test_import_is_cheap_and_the_export_is_lazy():
    code = "import sys, rebalance; print(sorted({'torch', 'dvc', 'pandas'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
    from rebalance import registry

    assert package.open_release is registry.open_release is open_release
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_bad_split_missing_revision_and_missing_manifest_are_one_line(repo: Path):
    one_line_error(r"unknown split 'dev'; use one of train, val, test", open_release, str(repo), split="dev")
    text = one_line_error("unknown revision", open_release, str(repo), f"{NAME}@v9.9.9")
    assert f"{NAME}@v9.9.9" in text
    text = one_line_error("no data/fused/manifest.csv", open_release, str(repo), "HEAD")  # nothing built
    assert "rebalance releases" in text
    one_line_error("cannot clone", open_release, str(repo.parent / "no-such-registry"), "main")


def hand_made_release(root: Path) -> tuple[pd.DataFrame, dict[str, Path]]:
    """A small release tree in root/data/fused: PNG and JPEG, RGB and grey, one photo rotated by
    its EXIF orientation, three splits; its manifest rows and files."""
    rng, rows, files = np.random.default_rng(0), [], {}
    for split in ("train", "val", "test"):
        for i in range(6):
            label, name = f"c{i % 2}", (f"img.{i}.jpg" if i % 3 == 0 else f"img_{i}.png")
            path = f"{split}/{label}/{name}"
            f = root / "data" / "fused" / path
            f.parent.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(rng.integers(0, 255, (12, 16, 3) if i % 2 else (12, 16), dtype=np.uint8))
            exif = Image.Exif()
            exif[0x0112] = 6 if i == 0 else 1  # orientation: 6 = rotated 90 degrees clockwise
            if name.endswith(".jpg"):
                image.save(f, exif=exif.tobytes())
            else:
                image.save(f)
            files[path] = f
            sha = hashlib.sha256(f.read_bytes()).hexdigest()
            rows.append(manifest.row(path=path, split=split, label=label, origin="real", sha256=sha))
    return manifest.frame(rows), files


def test_a_hand_made_sharded_release_with_tars_anywhere(tmp_path: Path):
    """Only the manifest's `shard` column says where a tar is: tars moved to other folders and
    names are read all the same, each once, in manifest order; workers share them out."""
    reg = tmp_path / "registry"
    reg.mkdir()
    fused, files = hand_made_release(tmp_path / "tree")
    folder = reg / "data" / "fused"
    packed = shards.write(fused, files, folder, shard_mb=0.002)
    moved = {old: f"packed/{i % 2}/part {i}.tar" for i, old in enumerate(dict.fromkeys(packed.shard))}
    for old, new in moved.items():
        (folder / new).parent.mkdir(parents=True, exist_ok=True)
        (folder / old).rename(folder / new)
    packed["shard"] = packed.shard.map(moved)
    manifest.write(packed, folder / "manifest.csv")
    (reg / "params.yaml").write_text(yaml.safe_dump({"dataset": {"name": "t", "classes": ["c0", "c1"]}}))
    run(["git", "init", "-q", "-b", "main"], reg)
    run([sys.executable, "-m", "dvc", "init", "-q"], reg)
    run([sys.executable, "-m", "dvc", "add", "-q", "data/fused"], reg)
    commit_all(reg, "release")
    run(["git", "tag", "-a", "t@v1.0.0", "-m", "release"], reg, env=home_env(tmp_path))

    for split in ("train", "test", None):
        check_shards(open_release(str(reg), "t@v1.0.0", split), folder, split, ["c0", "c1"])
    ds = open_release(str(reg), "t@v1.0.0", "train")
    assert len(ds.shards) > 2 and all(s.startswith("packed/") for s in ds.shards)
    rotated = next(image for image, _, row in ds if row["path"] == "train/c0/img.0.jpg")
    assert rotated.size == (12, 16) and rotated.mode == "L"  # stored 16 x 12, EXIF: turned upright
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(row["path"] for _, _, row in loader) == sorted(fused.path[fused.split == "train"])


# --------------------------------------------------------------------------- slow: one registry


@pytest.fixture(scope="module")
def registry(builds: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    """The registry tests' builds released: main per file (v1.0.0, its data/fused kept aside as
    `files`), then branch `reseed` merged, a build fused as shards, released as v1.1.0 with its new
    test set (the workspace's data/fused is then that release)."""
    tmp = tmp_path_factory.mktemp("open_release")
    reg, env = registry_copy(builds, tmp / "reg"), home_env(tmp)
    rebalance(["release", "1.0.0"], reg, env)
    files = tmp / "files"
    shutil.copytree(reg / "data" / "fused", files)
    run(["git", "merge", "-q", "--no-edit", "-X", "theirs", "reseed"], reg, env=env)
    dvc(["checkout", "-q"], reg, env)
    rebalance(["release", "1.1.0", "--new-test-set"], reg, env)
    classes = yaml.safe_load((reg / "params.yaml").read_text())["dataset"]["classes"]
    return {"repo": reg, "env": env, "files": files, "shards": reg / "data" / "fused", "classes": classes}


@pytest.fixture
def home(registry: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The registry's HOME (its default remote, a folder under it) for DVC in this process."""
    monkeypatch.setenv("HOME", registry["env"]["HOME"])
    return Path(registry["env"]["HOME"])


def check_files(ds, folder: Path, split: str | None, classes: list[str]) -> None:
    """Every item of a per-file release: the manifest's rows in order, labels, pixels of the file."""
    expected = read_manifest(folder, split)
    assert isinstance(ds, ReleaseFiles) and not isinstance(ds, torch.utils.data.IterableDataset)
    assert len(ds) == len(expected) > 0 and ds.classes == classes
    assert ds.rows.path.tolist() == expected.path.tolist()
    for i, r in enumerate(expected.to_dict("records")):
        image, label, row = ds[i]
        assert row == r and label == classes.index(r["label"])
        assert image.mode in ("RGB", "L") and np.array_equal(pixels(image), stored(folder / r["path"]))


def check_shards(ds, folder: Path, split: str | None, classes: list[str]) -> None:
    """Every sample of a sharded release, each once, in manifest order; pixels of the tar sample."""
    expected = read_manifest(folder, split)
    assert isinstance(ds, ReleaseShards) and isinstance(ds, torch.utils.data.IterableDataset)
    assert len(ds) == len(expected) > 0 and ds.classes == classes
    items = list(ds)
    assert [row for _, _, row in items] == expected.to_dict("records")
    for (image, label, _), r in zip(items, expected.itertuples()):
        assert label == classes.index(r.label)
        assert np.array_equal(pixels(image), stored(shards.read_bytes(folder, r)))


@pytest.mark.slow
def test_a_per_file_release(registry: dict, home: Path):
    reg, classes = str(registry["repo"]), registry["classes"]
    for split in ("train", "test", None):
        check_files(open_release(reg, FILES_TAG, split), registry["files"], split, classes)
    train = read_manifest(registry["files"], "train")
    ds = open_release(reg, FILES_TAG, transform=small_tensor)
    for context in ("fork", "spawn"):  # workers open their own filesystem
        loader = torch.utils.data.DataLoader(
            ds, batch_size=5, num_workers=2, multiprocessing_context=context, persistent_workers=False
        )
        batches = list(loader)
        x = torch.cat([b[0] for b in batches])
        assert x.shape == (len(train), 3, 8, 8) and x.dtype == torch.uint8
        assert torch.cat([b[1] for b in batches]).tolist() == [classes.index(c) for c in train.label]
        assert [p for b in batches for p in b[2]["path"]] == train.path.tolist()
    assert torch.equal(x[0], small_tensor(open_release(reg, FILES_TAG)[0][0]))


@pytest.mark.slow
def test_a_sharded_release(registry: dict, home: Path):
    reg, classes, folder = str(registry["repo"]), registry["classes"], registry["shards"]
    manifest = read_manifest(folder, None)
    assert (manifest.shard != "").all()  # the workspace holds the sharded release
    for split in ("train", "val", None):
        check_shards(open_release(reg, SHARDS_TAG, split), folder, split, classes)
    train = read_manifest(folder, "train")
    assert train.shard.nunique() > 1  # several tars: workers share them out
    ds = open_release(reg, SHARDS_TAG, "train", transform=small_tensor)
    assert len(ds) == len(train) and ds.rows.shard.tolist() == train.shard.tolist()
    for context in ("fork", "spawn"):
        loader = torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=2, multiprocessing_context=context
        )
        seen = [(row["path"], label, image.shape) for image, label, row in loader]
        assert sorted(p for p, _, _ in seen) == sorted(train.path)  # each sample once, across the workers
        label_of = dict(zip(train.path, train.label))
        assert all(label == classes.index(label_of[p]) and shape == (3, 8, 8) for p, label, shape in seen)


@pytest.mark.slow
def test_a_release_read_from_s3_only(registry: dict, tmp_path: Path, moto_s3: dict, monkeypatch):  # noqa: F811
    """A bare clone (no DVC cache), an empty default remote: every byte comes from S3."""
    reg = copy_built(registry["repo"], tmp_path / "reg")
    env = home_env(tmp_path) | {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    s3 = {
        "url": "s3://registry/acne",
        "endpointurl": moto_s3["endpoint"],
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
    }
    dvc(["remote", "add", "--local", "s3", s3["url"]], reg, env)
    for key in ("endpointurl", "region", "access_key_id", "secret_access_key"):
        dvc(["remote", "modify", "--local", "s3", key, s3[key]], reg, env)
    dvc(["push", "-q", "-r", "s3", "--all-tags"], reg, env)
    origin = tmp_path / "registry.git"
    run(["git", "clone", "-q", "--bare", str(reg), str(origin)], tmp_path, env=env)
    monkeypatch.setenv("HOME", env["HOME"])  # the releases' default remote: an empty folder here
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    classes = registry["classes"]
    # the release's own remote (a folder under HOME) is empty here
    one_line_error("data/fused/manifest.csv is not in the DVC remote", open_release, str(origin), FILES_TAG)
    ds = open_release(str(origin), FILES_TAG, "train", remote="s3", remote_config=s3)
    check_files(ds, registry["files"], "train", classes)
    ds = open_release(str(origin), SHARDS_TAG, "val", remote="s3", remote_config=s3)
    check_shards(ds, registry["shards"], "val", classes)


@pytest.mark.slow
def test_a_sharded_release_is_imported_and_read_without_the_loader(registry: dict, tmp_path: Path):
    """The sharded release's layout (each split's tars in its folder, beside the listing and the
    cards), and a consumer's `dvc import` of it read with the project's tar reader: every sample
    once, with the manifest's checksum."""
    folder, env = registry["shards"], registry["env"]
    stored = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    beside = {"manifest.csv", "README.md", "croissant.json", ".gitignore"}
    assert "manifest.csv" in stored and all(
        s in beside or re.fullmatch(r"(train|val|test)/\1-\d{6}\.tar", s) for s in stored
    ), stored
    assert len(stored) > 4  # several shards per split at this shard_mb
    origin = tmp_path / "registry.git"
    run(["git", "clone", "-q", "--bare", str(registry["repo"]), str(origin)], tmp_path, env=env)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    run(["git", "init", "-q"], consumer, env=env)
    dvc(["init", "-q"], consumer, env)
    dvc(["import", "-q", str(origin), "data/fused", "--rev", SHARDS_TAG, "-o", "fused"], consumer, env)
    m = manifest.read(consumer / "fused" / "manifest.csv")
    seen = {}
    for meta, data in shards.iterate(consumer / "fused"):
        assert hashlib.sha256(data).hexdigest() == meta["sha256"]
        seen[meta["path"]] = meta["sha256"]
    assert seen == dict(zip(m.path, m.sha256))  # every sample, each once, checksums as the manifest says

"""The source folder as a dependency: stage scan's listing, `rebalance plan` = stage count, DVC re-runs."""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, commit_all, folder_params, run, set_params
from imagegen import make_folder, smooth_image, stage, workdir
from PIL import Image

from rebalance.cli import main
from rebalance.core.errors import RebalanceError
from rebalance.dataset import plan
from rebalance.registry.gate import check_up_to_date


def xray16(path: Path, seed: int) -> None:
    """A smooth 16-bit greyscale image (PIL mode I;16), distinct per seed."""
    grey = np.asarray(smooth_image(np.random.default_rng(seed), 32).convert("L"), np.float64)
    Image.fromarray((grey * 200 + 3000).astype(np.uint16)).save(path)


def bomb_png(path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def messy_source(tmp_path: Path) -> Path:
    """12 + 9 usable images (two of them 16-bit) among every kind of file that stage raw skips."""
    src = tmp_path / "src"
    make_folder(src, {"a": 11, "b": 8})
    xray16(src / "a" / "xray.png", 1)
    xray16(src / "b" / "xray.tif", 2)
    (src / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    (src / "a" / "notes.txt").write_text("not an image")
    bomb_png(src / "b" / "bomb.png")
    outside = tmp_path / "outside.png"
    smooth_image(np.random.default_rng(99)).save(outside)
    (src / "b" / "link.png").symlink_to(outside)
    (src / "b" / "dangling.png").symlink_to(src / "b" / "gone.png")
    (src / "a" / ".ipynb_checkpoints").mkdir()
    smooth_image(np.random.default_rng(98)).save(src / "a" / ".ipynb_checkpoints" / "x.png")
    return src


def plan_json() -> dict:
    result = CliRunner().invoke(main, ["plan", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_counts_exactly_what_count_keeps(tmp_path, monkeypatch):
    src = messy_source(tmp_path)
    work = workdir(tmp_path, src, ["a", "b"])
    monkeypatch.chdir(work)
    before = plan_json()  # from the source folder: nothing ingested yet
    assert not (work / "data/raw").exists()
    stage(work, "raw")
    after = plan_json()  # from data/raw, current
    stage(work, "count")
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert before == after == counts  # same images, same fingerprints (16-bit: windowed), same split
    assert counts["raw"] == {"a": 12, "b": 9}
    assert len(json.loads((work / "metrics/raw.json").read_text())["skipped"]) == 6

    smooth_image(np.random.default_rng(7)).save(src / "b" / "new.png")  # data/raw is now stale
    assert plan_json()["raw"] == {"a": 12, "b": 10}


def test_plan_on_a_bare_folder_verifies_images(tmp_path):
    raw = tmp_path / "raw"
    make_folder(raw, {"a": 4, "b": 3})
    (raw / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    xray16(raw / "b" / "deep.tif", 5)
    real = plan.from_raw(raw, folder_params(["a", "b"]))  # no images.csv: the folder is scanned
    names = [n for n, _ in real.images]
    assert names == [*(f"a/{i}.png" for i in range(4)), *(f"b/{i}.png" for i in range(3)), "b/deep.tif"]
    assert len(real.prints) == 8  # every name is a decodable file: the broken one is not counted


def listing(work: Path) -> dict:
    return json.loads((work / "data/source.json").read_text())


def test_scan_lists_every_file_and_rewrites_only_on_change(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 2, "b": 2})
    (src / "a" / "sub").mkdir()
    (src / "a" / "sub" / "deep.png").write_bytes((src / "a" / "0.png").read_bytes())
    (src / ".hidden").mkdir()
    (src / ".hidden" / "x.txt").write_text("x")
    (src / "b" / "away.png").symlink_to(tmp_path / "nowhere.png")
    work = workdir(tmp_path, src, ["a", "b"])
    assert "scan: 7 entries" in stage(work, "scan").stdout
    found = listing(work)
    assert found["source"] == str(src) and found["metadata"] is None
    rows = {row[0]: row[1:] for row in found["files"]}
    assert list(rows) == [
        ".hidden/x.txt",
        "a/0.png",
        "a/1.png",
        "a/sub/deep.png",
        "b/0.png",
        "b/1.png",
        "b/away.png",
    ]
    st = (src / "a" / "sub" / "deep.png").stat()
    assert rows["a/sub/deep.png"] == [st.st_size, st.st_mtime_ns]
    assert "broken symlink" in rows["b/away.png"][0]

    written = (work / "data/source.json").stat().st_mtime_ns
    assert "unchanged" in stage(work, "scan").stdout
    assert (work / "data/source.json").stat().st_mtime_ns == written  # not rewritten: same listing

    (src / "b" / "2.png").write_bytes((src / "b" / "0.png").read_bytes())  # a file added
    assert ", changed" in stage(work, "scan").stdout and "b/2.png" in {r[0] for r in listing(work)["files"]}
    before = listing(work)
    os.utime(src / "a" / "0.png", ns=(1, 1))  # a file rewritten (mtime)
    stage(work, "scan")
    assert listing(work) != before


def test_scan_of_the_demo_lists_its_params(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text((REPO / "params.yaml").read_text())
    set_params(work, {"raw": {"demo": {"scale": 0.05}}})
    stage(work, "scan")
    assert listing(work) == {"source": "demo", "demo": {"scale": 0.05, "size": 128, "seed": 0}}


@pytest.mark.slow
def test_raw_reruns_exactly_when_the_source_changes(repo, tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 3, "b": 3, "c": 3})
    set_params(
        repo,
        {
            "dataset": {"name": "t", "classes": ["a", "b", "c"], "lesion_bins": None},
            "raw": {"source": str(src)},
            "synthesize": {"methods": {"diffusion": 1.0}},
        },
    )
    commit_all(repo, "a folder source")

    def repro_raw() -> str:
        return run([sys.executable, "-m", "dvc", "repro", "raw"], repo).stdout

    assert "Running stage 'raw'" in repro_raw()
    assert (repo / "data/raw/a/0.png").is_file()
    smooth_image(np.random.default_rng(42)).save(src / "b" / "new.png")
    out = repro_raw()
    assert "Running stage 'raw'" in out, out
    assert (repo / "data/raw/b/new.png").read_bytes() == (src / "b/new.png").read_bytes()
    out = repro_raw()
    assert "Running stage 'scan'" in out and "Running stage 'raw'" not in out, out
    assert "scan: 10 entries" in out and "unchanged" in out  # DVC keeps the listing (persist) while scan runs

    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], repo).stdout)
    assert status["scan"] == ["always changed"] and "raw" not in status and "count" in status


class FakeRepo:
    """What check_up_to_date asks of a dvc Repo: its root and `status()`."""

    def __init__(self, root: Path, status: dict) -> None:
        self.root_dir, self._status = str(root), status

    def status(self) -> dict:
        return self._status


def test_release_gate_accepts_scan_always_changed_only_while_the_listing_is_current(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 3, "b": 3})
    work = workdir(tmp_path, src, ["a", "b"])
    stage(work, "scan")
    check_up_to_date(FakeRepo(work, {"scan": ["always changed"]}))  # what `dvc status` says after repro
    with pytest.raises(RebalanceError, match="not up to date .*raw"):
        check_up_to_date(FakeRepo(work, {"scan": ["always changed"], "raw": [{"changed deps": {}}]}))
    (src / "b" / "0.png").unlink()  # the source changed since the last `dvc repro`
    with pytest.raises(RebalanceError, match="the source folder changed"):
        check_up_to_date(FakeRepo(work, {"scan": ["always changed"]}))
    (work / "data/source.json").unlink()
    with pytest.raises(RebalanceError, match="the source folder changed"):
        check_up_to_date(FakeRepo(work, {"scan": ["always changed"]}))

"""A user's folder with bad files: one-line errors or reported skips, and the folder untouched."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, run
from PIL import Image


def tree_digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def workdir(tmp_path):
    """A folder dataset with a corrupt image, a non-image file and an empty class, plus params."""
    src = tmp_path / "source"
    rng = np.random.default_rng(0)
    for label, n in {"healthy": 8, "lesion": 6, "rare": 0}.items():
        (src / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                src / label / f"img{i}.jpg"
            )
    (src / "lesion" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    (src / "healthy" / "notes.txt").write_text("patient list")
    work = tmp_path / "work"
    work.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="toy", classes=["healthy", "lesion", "rare"], lesion_bins=None)
    params["raw"]["source"] = str(src)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work, src


def raw_stage(work: Path, check: bool):
    return run([sys.executable, "-m", "stages.raw"], work, check=check, env={"PYTHONPATH": str(REPO)})


def set_param(work: Path, **raw):
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["raw"].update(raw)
    (work / "params.yaml").write_text(yaml.safe_dump(params))


def test_empty_class_is_a_one_line_error(workdir):
    work, src = workdir
    before = tree_digest(src)
    proc = raw_stage(work, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "rare" in lines[0] and "no usable images" in lines[0]
    assert tree_digest(src) == before
    assert not (work / "data/raw").exists()  # nothing half-written


def test_bad_files_are_skipped_and_reported(workdir):
    work, src = workdir
    (src / "rare" / "one.png").write_bytes((src / "healthy" / "img0.jpg").read_bytes())
    before = tree_digest(src)
    proc = raw_stage(work, check=True)
    assert "broken.png" in proc.stdout and "notes.txt" in proc.stdout
    report = json.loads((work / "metrics/raw.json").read_text())
    assert report["images"] == {"healthy": 8, "lesion": 6, "rare": 1}
    assert {s["path"] for s in report["skipped"]} == {"lesion/broken.png", "healthy/notes.txt"}
    ingested = {
        p.relative_to(work / "data/raw").as_posix() for p in (work / "data/raw").rglob("*") if p.is_file()
    }
    assert "lesion/broken.png" not in ingested and "healthy/img0.jpg" in ingested
    assert (work / "data/raw/healthy/img0.jpg").read_bytes() == (src / "healthy/img0.jpg").read_bytes()
    assert tree_digest(src) == before


def test_strict_mode_stops_at_the_first_bad_file(workdir):
    work, src = workdir
    (src / "rare" / "one.png").write_bytes((src / "healthy" / "img0.jpg").read_bytes())
    set_param(work, on_bad_file="error")
    proc = raw_stage(work, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and ("notes.txt" in line or "broken.png" in line) and "on_bad_file" in line


def test_missing_source_folder(workdir, tmp_path):
    work, _ = workdir
    set_param(work, source=str(tmp_path / "nowhere"))
    proc = raw_stage(work, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "nowhere" in proc.stderr

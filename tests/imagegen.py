"""Small test images and a throw-away work folder that runs single stages (no DVC)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml
from conftest import REPO, deep_update, run
from PIL import Image


def smooth_image(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A smooth random RGB image: distinct ones are >= 12 phash bits apart, a JPEG re-encode <= 2."""
    return Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize(
        (size, size), Image.BICUBIC
    )


def reencode(src: Path, dst: Path, quality: int = 90) -> None:
    """Save `src` decoded, as a JPEG (a near-duplicate, not the same pixels)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).convert("RGB").save(dst, "JPEG", quality=quality)


def make_folder(root: Path, sizes: dict[str, int], seed: int = 0, prefix: str = "") -> list[Path]:
    """root/<class>/<prefix><i>.png for each class; returns the files."""
    rng = np.random.default_rng(seed)
    files = []
    for label, n in sizes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            path = root / label / f"{prefix}{i}.png"
            smooth_image(rng).save(path)
            files.append(path)
    return files


def workdir(tmp_path: Path, source: Path, classes: list[str], updates: dict | None = None) -> Path:
    """A folder with a params.yaml for `source` (a small ungraded dataset); stages run inside it."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    base = {
        "dataset": {"name": "toy", "classes": classes, "lesion_bins": None},
        "raw": {"source": str(source)},
        "count": {"target": {"strategy": "max"}},
        "compute": {"threads": 1},  # as conftest.TINY: one torch thread per xdist worker
    }
    params = deep_update(deep_update(params, base), updates or {})
    # diffusion alone, whatever `updates` say (the other methods' variants dropped with them)
    params = deep_update(params, {"synthesize": {"methods": {"diffusion": 1.0}}})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def stage(work: Path, name: str, check: bool = True):
    return run([sys.executable, "-m", f"stages.{name}"], work, check=check, env={"PYTHONPATH": str(REPO)})


def one_line_error(proc) -> str:
    """The single stderr line of a refused stage (asserting there is exactly one, no traceback)."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]

"""Shared setup of the pipeline benchmarks (bench_ingest.py, bench_memory.py); not a benchmark itself.

`make_source` writes a folder of small smooth random PNGs in class folders; `copy_project` makes a
throw-away copy of the repository (as tests/conftest.copy_repo: tracked and untracked-but-not-ignored
files, no data/, dvclive/, metrics/, dvc.lock) in a fresh git repo; `write_params` merges
updates into the repository's params.yaml and checks them with the project's own loader; `run_stage`
runs one `python -m stages.<name>` in the copy, as its own process, and times it.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SKIPPED = ("data/", "dvclive/", "metrics/")
# mappings an update replaces whole (as tests/conftest.py): method shares, the variants to train,
# the generators to train
REPLACED_WHOLE = {"methods", "variants", "generators"}


def machine() -> dict:
    """What a result was measured on: the CPU's model, cores, OS and Python (a GPU run adds its own)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = platform.platform(terse=True)
    return {"cpu": model, "cores": cores(), "os": system, "python": platform.python_version()}


def write_result(path: Path, result: dict) -> None:
    """A benchmark's JSON with the UTC date and the machine it was measured on (docs/benchmarks.md
    shows both beside every figure)."""
    stamped = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": machine(), **result}
    Path(path).write_text(json.dumps(stamped, indent=2) + "\n")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _write_image(job: tuple[str, int, int]) -> None:
    path, size, seed = job
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(small, "RGB").resize((size, size), Image.BICUBIC).save(path, compress_level=6)


def class_counts(n: int, shares: list[float]) -> list[int]:
    """`n` split by `shares` (largest remainder; every class gets at least one image)."""
    raw = [n * s / sum(shares) for s in shares]
    counts = [max(1, int(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def make_source(folder: Path, n: int, size: int, shares: list[float], seed: int = 0) -> dict[str, int]:
    """`folder`/c0..c<k-1>/img<i>.png: `n` size x size smooth random RGB images (an 8x8 random image
    upsampled bicubically), split over the classes by `shares`. Returns the count per class."""
    jobs, counts = [], {}
    for c, k in enumerate(class_counts(n, shares)):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
        counts[f"c{c}"] = k
        for i in range(k):  # image seed: its position over all classes (distinct images)
            jobs.append((str(folder / f"c{c}" / f"img{i:06d}.png"), size, seed * 10_000_019 + len(jobs)))
    with Pool(cores()) as pool:
        pool.map(_write_image, jobs, chunksize=max(1, len(jobs) // (cores() * 8)))
    return counts


def copy_project(dst: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, without outputs, in a fresh git repo."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file() and not name.startswith(SKIPPED) and name != "dvc.lock":
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "b@example.com"]):
        subprocess.run(["git", *args], cwd=dst, check=True)
    subprocess.run(["git", "config", "user.name", "bench"], cwd=dst, check=True)
    return dst


def deep_update(base: dict, updates: dict) -> dict:
    """`updates` merged into params `base`; then the per-generator variants of methods no longer
    in synthesize.methods are dropped, as a user changing methods drops them (as tests/conftest.py)."""
    _merge(base, updates)
    methods = base.get("synthesize", {}).get("methods", {})
    variants = base.get("train", {}).get("variants", {})
    for name in [n for n, v in variants.items() if v.get("method") not in (None, *methods)]:
        del variants[name]
    return base


def _merge(base: dict, updates: dict) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key not in REPLACED_WHOLE:
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def env(copy: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(copy), "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}


def write_params(copy: Path, updates: dict) -> dict:
    """The repository's params.yaml with `updates` merged in, written to the copy, validated
    there, and the copy committed."""
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), updates)
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    check = "from rebalance import config; config.load()"
    proc = subprocess.run(
        [sys.executable, "-c", check], cwd=copy, env=env(copy), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"params.yaml of the copy is invalid:\n{proc.stderr.strip()}")
    for args in (["add", "-A"], ["commit", "-q", "-m", "bench copy"]):  # DVCLive needs a commit
        subprocess.run(["git", *args], cwd=copy, check=True)
    return params


def run_stage(copy: Path, args: list[str], prefix: list[str] | None = None) -> tuple[float, str]:
    """Run `python -m stages.<args>` in the copy (optionally under `prefix`, e.g. /usr/bin/time);
    (wall seconds, combined output). Stops the benchmark with the output when the stage fails."""
    cmd = [*(prefix or []), sys.executable, "-m", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=copy, env=env(copy), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}) in {copy}:\n{output[-4000:]}")
    return seconds, output

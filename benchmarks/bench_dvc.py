"""DVC's own cost at 20k and 100k images: a no-op `dvc status` and `dvc repro` of the data graph.

For each size, writes a source folder of small smooth random PNGs in 4 classes (equal shares, so
nothing needs synthesizing and the run measures DVC, not a generator), makes a throw-away copy of
the project (benchmarks/_project.py) pointed at it, and runs `dvc repro fuse` (scan, raw, count,
detect, the generators' training at a few steps, synthesize, flip, fuse). Then, with everything up
to date, times `dvc status --with-deps fuse` and a no-op `dvc repro fuse` (each the best of
--repeat); then switches `fuse.format` to shards, re-runs fuse, and times both again: the
difference is what the per-file data/fused tree costs DVC at that size.

    python benchmarks/bench_dvc.py --sizes 20000 100000      # ~5 and ~25 min on 2 cores
    python benchmarks/bench_dvc.py --sizes 2000              # a quick check

Prints one line per size and format; writes benchmarks/results/dvc_noop.json.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# isort: split
from _project import RESULTS, copy_project, env, make_source, write_params, write_result

CLASSES = ["c0", "c1", "c2", "c3"]


def params_for(source: Path) -> dict:
    return {
        "dataset": {"name": "bench", "classes": CLASSES, "lesion_bins": None},
        "raw": {"source": str(source)},
        "count": {"target": {"strategy": "fixed", "n": 1}},  # balanced source: nothing to generate
        "synthesize": {"methods": {"diffusion": 1.0}},
        "generators": {
            "diffusion": {
                "resolution": 16,
                "channels": [16, 32],
                "steps": 5,
                "batch_size": 16,
                "attention": False,
            },
        },
        "assess": {"epochs": 1},
    }


def dvc(copy: Path, args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=copy, env=env(copy),
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed in {copy}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return time.perf_counter() - start


def noop(copy: Path, repeat: int) -> dict[str, float]:
    status = min(dvc(copy, ["status", "--with-deps", "fuse"]) for _ in range(repeat))
    repro = min(dvc(copy, ["repro", "-q", "fuse"]) for _ in range(repeat))
    return {"status_s": round(status, 2), "noop_repro_s": round(repro, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    results = {}
    for n in a.sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench_dvc_{n}_"))
        try:
            make_source(work / "source", n, a.size, [1, 1, 1, 1])
            copy = copy_project(work / "repo")
            write_params(copy, params_for(work / "source"))
            build = dvc(copy, ["repro", "-q", "fuse"])
            files = sum(1 for p in (copy / "data").rglob("*") if p.is_file())
            row = {"build_s": round(build, 1), "files_under_data": files, "files": noop(copy, a.repeat)}
            t = row["files"]
            print(f"{n} images: build to fuse {build:.0f} s, {files} files under data/; per-file "
                  f"data/fused: dvc status {t['status_s']} s, no-op dvc repro {t['noop_repro_s']} s",
                  flush=True)  # fmt: skip
            updated = {**params_for(work / "source"), "fuse": {"format": "shards"}}
            write_params(copy, updated)
            dvc(copy, ["repro", "-q", "fuse"])
            row["shards"] = noop(copy, a.repeat)
            print(f"{n} images: sharded data/fused: dvc status {row['shards']['status_s']} s, "
                  f"no-op dvc repro {row['shards']['noop_repro_s']} s", flush=True)  # fmt: skip
            results[n] = row
        finally:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    write_result(RESULTS / "dvc_noop.json", results)


if __name__ == "__main__":
    main()

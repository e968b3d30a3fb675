"""Synthesis throughput with 1 and more processes launched by accelerate (synthesize.processes).

Runs stage synthesize from scratch in a throw-away copy of a built repository (one where
`dvc repro` has run: data/raw, data/counted and the trained models exist), once per process
count, and checks that every count gives the same bytes. Images/s includes the stage's start-up
and each process's model loading, as a user sees it.

    python benchmarks/bench_launch.py --repo /path/to/built/repo --processes 1 2

Prints images/s per process count and the speed-up; writes benchmarks/results/launch.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _project import RESULTS, write_result


def synthesize(repo: Path, processes: int) -> tuple[float, dict[str, str]]:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["synthesize"]["processes"] = processes
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = repo / "data" / "synthesized"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "stages.synthesize"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"synthesize with {processes} processes failed:\n{proc.stderr[-3000:]}")
    made = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*")
            if p.is_file()}  # fmt: skip
    return took, made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("."), help="a built repository (after dvc repro)")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_launch_")) / "repo"
    shutil.copytree(a.repo, work, symlinks=True, ignore=shutil.ignore_patterns(".dvc", ".git", "dvclive"))
    results, reference = {}, None
    try:
        for n in a.processes:
            took, made = synthesize(work, n)
            reference = reference or made
            same = made == reference
            rate = round(len(made) / took, 2)
            results[n] = {"seconds": round(took, 2), "files": len(made), "images_per_s": rate,
                          "same_bytes_as_first": same}  # fmt: skip
            print(f"{n} process(es): {len(made)} files in {took:.1f} s, {rate:.1f} images/s, "
                  f"same bytes: {same}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
    first = results[a.processes[0]]["images_per_s"]
    for n, r in results.items():
        print(f"speed-up {n} vs {a.processes[0]}: {r['images_per_s'] / first:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    record = {"cores": os.cpu_count(), "results": results}
    write_result(RESULTS / "launch.json", record)


if __name__ == "__main__":
    main()

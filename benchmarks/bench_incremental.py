"""Incremental synthesis: cost of adding 10% more images to one class vs that class from scratch.

Runs in a repository where `dvc repro count` has been done (data/raw, data/counted), e.g. a copy
made with tests/conftest.copy_repo. Both measurements are cold for the method (a fresh context:
sources clustered and the lesion bank cut again); imports are warm. Prints the ratio.

    python benchmarks/bench_incremental.py [--label level3] [--n 190]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rebalance import config
from rebalance.core import manifest, paths
from rebalance.synth import methods
from rebalance.synth.base import Context
from rebalance.synth.reuse import fill


def run(label: str, n: int, old_dir: Path | None, old: dict) -> tuple[float, Path, dict]:
    params = config.load()
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    train = real[real.split == "train"].reset_index(drop=True)
    out = Path(tempfile.mkdtemp(prefix="bench_inc_"))
    ctx = Context(params=params, train_real=train, raw_dir=paths.RAW, out_dir=out)
    start = time.perf_counter()
    rows, reused = fill(
        methods.prepare("lesion_edit", ctx), "lesion_edit", label, n, old, old_dir or out, out
    )
    elapsed = time.perf_counter() - start
    return elapsed, out, {r["path"]: r for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="level3")
    ap.add_argument("--n", type=int, default=190)
    a = ap.parse_args()
    more = a.n + max(1, round(a.n * 0.1))
    scratch, out, rows = run(a.label, a.n, None, {})
    incremental, out2, _ = run(a.label, more, out, rows)
    print(f"from scratch: {a.n} images of {a.label} in {scratch:.2f} s")
    print(f"incremental: {a.n} -> {more} images in {incremental:.2f} s")
    print(f"ratio: {incremental / scratch:.3f} (target: <= 0.15)")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out2, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Peak memory of the whole pipeline: max RSS per stage at a small and a large source (5k vs 50k images).

For each size, writes a source of small smooth random PNGs (48x48 by default) in 4 imbalanced
classes (50/30/15/5 %), makes a throw-away copy of the project (benchmarks/_project.py) with tiny but
real params (a few training steps, a 16 px diffusion UNet, 2 sampler steps, `count.target.strategy:
max`, so the minority classes are filled by the diffusion method), checks them with the project's
loader, then runs every stage of the copy's dvc.yaml in file order (foreach stages once per item:
train_generator@<name>, train@<variant>) as its own process, `python -m stages.<name>` exactly as
the stage's `cmd`, under `/usr/bin/time -v` (or, without it, a Python wrapper that reads
resource.getrusage(RUSAGE_CHILDREN)).

The peak RSS of a stage is its "Maximum resident set size": that of the largest single process of
the stage (the stage's own process or one of its pool / DataLoader workers, whichever peaked
highest; Linux reports the max over waited-for descendants), not the sum of processes alive at once.
DVC itself (hashing, caching) is not measured. Prints the per-stage table for both sizes and
max-RSS(large) / max-RSS(small) over the stages (the target: <= 1.5). Every torch stage starts
at ~0.7-1 GiB (torch, diffusers, timm imported), so small sizes only show that floor. With the
50/30/15/5 % classes the target `max` makes synthesize generate as many images as the source has
train images (~35k at --large 50000): that stage dominates the run time.

    python benchmarks/bench_memory.py [--small 5000] [--large 50000] [--size 48]
        [--out benchmarks/results/bench_memory.json] [--keep]
    python benchmarks/bench_memory.py --small 500 --large 2000      # a quick check, 5-10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

# benchmarks/_project.py, beside this script (on sys.path when run as a script)
# isort: split
from _project import RESULTS, copy_project, make_source, run_stage, write_params, write_result

SHARES = [0.50, 0.30, 0.15, 0.05]
TIME = Path("/usr/bin/time")
# Run a command, then print the max RSS (KiB) of its process tree: the fallback without /usr/bin/time.
WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
    "print('Maximum resident set size (kbytes):', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
    "file=sys.stderr); sys.exit(rc)"
)
TINY = {
    "count": {"target": {"strategy": "max"}},
    "synthesize": {"methods": {"diffusion": 1.0}, "diffusion": {"steps": 2}},
    "generators": {
        "diffusion": {
            "resolution": 16,
            "channels": [16, 32],
            "steps": 20,
            "batch_size": 16,
            "attention": False,
        },
    },
    "assess": {"epochs": 1},
    "train": {
        "steps": 20,
        "image_size": 32,
        "width": 8,
        "seeds": [0],
        "eval_every": 10,
        "variants": {
            "real": {"data": "real", "augment": False, "weighted": False},
            "balanced": {"data": "balanced", "augment": False, "weighted": False},
            "balanced_diffusion": {"data": "balanced", "method": "diffusion"},  # the generator's own row
        },
        "headline": "balanced",
    },
    "evaluate": {"bootstrap": 20},
    "compute": {"workers": 0},
}


def lookup(params: dict, ref: str):
    """The value of `${group.key}` in params."""
    value = params
    for key in re.fullmatch(r"\$\{(.+)\}", ref).group(1).split("."):
        value = value[key]
    return value


def stages(copy: Path, params: dict) -> list[tuple[str, list[str]]]:
    """(name, argv after `python -m`) of every stage of dvc.yaml, in file order (a foreach stage once
    per item, as name@item, with ${key} / ${item} filled in)."""
    out = []
    for name, spec in yaml.safe_load((copy / "dvc.yaml").read_text())["stages"].items():
        if "foreach" in spec:
            items = spec["foreach"]
            items = lookup(params, items) if isinstance(items, str) else items
            cmd = spec["do"]["cmd"]
            cmds = [(f"{name}@{k}", cmd.replace("${key}", str(k)).replace("${item}", str(k))) for k in items]
        else:
            cmds = [(name, spec["cmd"])]
        for stage, cmd in cmds:
            argv = cmd.split()
            if argv[:2] != ["python", "-m"] or "${" in cmd:
                raise SystemExit(f"stage {stage}: {cmd!r} is no plain `python -m ...`; update the benchmark")
            out.append((stage, argv[2:]))
    return out


def measure(n: int, size: int, workdir: Path) -> dict:
    source, copy = workdir / "source", copy_project(workdir / "project")
    per_class = make_source(source, n, size, SHARES)
    params = write_params(
        copy,
        TINY
        | {
            "dataset": {"name": "bench", "classes": list(per_class), "lesion_bins": None},
            "raw": {"source": str(source.resolve())},
        },
    )
    prefix = [str(TIME), "-v"] if TIME.exists() else [sys.executable, "-c", WRAPPER]
    table = {}
    for stage, argv in stages(copy, params):
        seconds, output = run_stage(copy, argv, prefix)
        kib = int(re.findall(r"Maximum resident set size \(kbytes\): (\d+)", output)[-1])
        table[stage] = {"max_rss_mib": round(kib / 1024, 1), "seconds": round(seconds, 2)}
        print(f"  n={n} {stage}: {kib / 1024:.0f} MiB, {seconds:.1f} s", file=sys.stderr, flush=True)
    synthesized = len(pd.read_csv(copy / "data/synthesized/manifest.csv"))  # the images are packed in tars
    return {"n": n, "classes": per_class, "synthesized": synthesized, "stages": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=5000, help="source images of the small run")
    ap.add_argument("--large", type=int, default=50000, help="source images of the large run")
    ap.add_argument("--size", type=int, default=48, help="pixels, square")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_memory.json")
    ap.add_argument("--keep", action="store_true", help="keep the temp folders (sources, project copies)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still removes the temp folders
    runs = {}
    for label, n in (("small", a.small), ("large", a.large)):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench_memory_{label}_"))
        try:
            runs[label] = measure(n, a.size, workdir)
        finally:
            if a.keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    small, large = runs["small"]["stages"], runs["large"]["stages"]
    peak = {k: max(v["max_rss_mib"] for v in r["stages"].values()) for k, r in runs.items()}
    top = {k: max(r["stages"], key=lambda s, r=r: r["stages"][s]["max_rss_mib"]) for k, r in runs.items()}
    result = {
        "size": a.size,
        "method": "/usr/bin/time -v" if TIME.exists() else "getrusage(RUSAGE_CHILDREN)",
        "runs": runs,
        "max_rss_mib": peak,
        "peak_stage": top,
        "ratio": round(peak["large"] / peak["small"], 3),
        "target": 1.5,
    }
    every = {**small, **large}  # the same stages unless dvc.yaml changed between the two runs
    w = max(len(stage) for stage in every) + 2
    print(f"{'stage':<{w}}{'small MiB':>10}{'large MiB':>10}{'ratio':>7}{'small s':>9}{'large s':>9}")
    for stage in every:
        s, g = small.get(stage), large.get(stage)
        mib = [f"{x['max_rss_mib']:>10.0f}" if x else f"{'-':>10}" for x in (s, g)]
        ratio = f"{g['max_rss_mib'] / s['max_rss_mib']:>7.2f}" if s and g else f"{'-':>7}"
        secs = [f"{x['seconds']:>9.1f}" if x else f"{'-':>9}" for x in (s, g)]
        print(f"{stage:<{w}}{mib[0]}{mib[1]}{ratio}{secs[0]}{secs[1]}")
    print(
        f"images: small {a.small} (+{runs['small']['synthesized']} synthesized), "
        f"large {a.large} (+{runs['large']['synthesized']} synthesized), {a.size}x{a.size} px"
    )
    for k in ("small", "large"):
        print(f"max RSS {k}: {peak[k]:.0f} MiB (stage {top[k]})")
    print(f"ratio max-RSS(large)/max-RSS(small): {result['ratio']:.3f} (target: <= {result['target']})")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(a.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

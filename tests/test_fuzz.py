"""A property-based fuzzer of the datasets users bring (tests/datasetgen.py): each drawn dataset
runs through every stage from scan to evaluate with tiny params, and the run must end well.

Properties, checked with plain code here (not the pipeline's own checks):
- the run exits 0, or refuses with one line on stderr naming a file or a params key;
- every planted broken file is a reported skip with a reason, and every skip has one;
- val and test hold only real images; every synthetic image and flip is in train, its root a train
  real image; planted copies (exact, or near: the same picture a little brighter) share a split;
- every class of params is in every split, or the run said why (in metrics/counts.json).

A handful of examples of up to 24 images a class run in CI (derandomized: the same ones every
run). More, freshly drawn, with classes of up to 300 images:
`REBALANCE_FUZZ_EXAMPLES=200 pytest tests/test_fuzz.py -n 0`. A failure's shrunk example is kept
as a regular test at the end of this file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, deep_update
from datasetgen import Dataset, ImageSpec, datasets, write
from hypothesis import HealthCheck, event, given, settings

EXAMPLES = int(os.environ.get("REBALANCE_FUZZ_EXAMPLES", "6"))
DEEP = "REBALANCE_FUZZ_EXAMPLES" in os.environ  # asked for more: fresh examples, classes of up to 300

# What every stage of dvc.yaml runs, in its order, in one process per example (no DVC, one torch
# import): `python -m stages.<name> [argument]`.
DRIVER = """
import runpy, sys
for stage in sys.argv[1:]:
    name, _, arg = stage.partition(":")
    sys.argv = [name] + ([arg] if arg else [])
    try:
        runpy.run_module(f"stages.{name}", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code not in (None, 0):
            print(f"stage {stage} exited {stop.code}", file=sys.stdout)
            sys.exit(stop.code)
"""

VARIANTS = {
    "real": {"data": "real"}, "balanced": {"data": "balanced"},
    "balanced_diffusion": {"data": "balanced", "method": "diffusion"},
}  # fmt: skip
TINY = {
    "count": {"target": {"strategy": "fixed", "n": 12}},
    "synthesize": {"methods": {"diffusion": 1.0}, "diffusion": {"steps": 2}},
    "generators": {"diffusion": {"resolution": 16, "channels": [8, 16], "steps": 4, "batch_size": 8}},
    "train": {"steps": 4, "image_size": 16, "width": 4, "seeds": [0], "headline": "balanced"},
    "evaluate": {"bootstrap": 10},
    "assess": {"epochs": 1},
    "compute": {"threads": 1, "processes": 1, "workers": 0},
}  # fmt: skip
STAGES = [
    "scan", "raw", "count", "detect", "train_diffusion", "judge", "synthesize", "assess",
    "flip", "fuse", "train:real", "train:balanced", "train:balanced_diffusion", "evaluate",
]  # fmt: skip
NAMES_A_FILE_OR_KEY = re.compile(r"(/|\b[a-z_]+\.[a-z_]+\b)")
PROGRESS = re.compile(r"^[^:]+: \d+ \S+ in [\d.]+ s(, [\d.]+ \S+/s)?$")  # a slow loop's summary line


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without the progress summaries slow loops print when stderr is not a terminal."""
    return [line for line in proc.stderr.strip().splitlines() if not PROGRESS.match(line)]


def run_pipeline(
    ds: Dataset, work: Path, updates: dict | None = None
) -> tuple[subprocess.CompletedProcess, object]:
    src = work / "source"
    written = write(ds, src)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = deep_update(deep_update(params, TINY), updates or {})
    params["train"]["variants"] = VARIANTS
    params["synthesize"]["methods"] = {"diffusion": 1.0}
    params["dataset"] |= {"name": "fuzz", "classes": ds.classes, "lesion_bins": None}
    params["raw"]["source"] = str(src)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *STAGES],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1"},
        timeout=600,
    )
    return proc, written


def check(ds: Dataset, work: Path) -> None:
    proc, written = run_pipeline(ds, work)
    err = proc.stderr.strip()
    event(err[:90] if proc.returncode else "built")
    assert "Traceback" not in err, err
    if proc.returncode != 0:
        lines = stderr_lines(proc)
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert NAMES_A_FILE_OR_KEY.search(lines[0]), lines[0]
        return
    raw = json.loads((work / "metrics/raw.json").read_text())
    assert all(s["reason"].strip() for s in raw["skipped"]), raw["skipped"]
    assert written.broken <= {s["path"] for s in raw["skipped"]}, (written.broken, raw["skipped"])

    fused = pd.read_csv(work / "data/fused/manifest.csv", dtype=str, keep_default_na=False)
    assert set(fused[fused.split != "train"].origin) <= {"real"}  # val and test: real only
    real_split = dict(zip(fused[fused.origin == "real"].source, fused[fused.origin == "real"].split))
    derived = fused[fused.origin != "real"]
    assert (derived.split == "train").all()
    for root in filter(None, derived.root):
        assert real_split.get(root) == "train", root  # made only from train real images
    index = pd.read_csv(work / "data/raw/images.csv", dtype=str, keep_default_na=False)
    raw_name = dict(zip(index.source, index.path))  # source file -> its name in data/raw
    for group in written.same:  # planted copies: one split
        splits = {real_split.get(raw_name.get(f)) for f in group} - {None}
        assert len(splits) <= 1, (group, splits)

    counts = json.loads((work / "metrics/counts.json").read_text())
    for label in ds.classes:
        for split in ("train", "val", "test"):
            said = [w for w in counts["warnings"] if label in w and split in w]
            assert counts["splits"][split].get(label, 0) > 0 or said, (
                f"{label}: no {split} image, not said why"
            )
            assert not said or f"warning: {said[0]}" in proc.stdout  # and the stage printed it


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not DEEP,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(datasets(max_per_class=300 if DEEP else 24))
def test_any_dataset_a_user_brings_ends_well(ds: Dataset):
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        check(ds, Path(tmp))


# Shrunk examples the fuzzer found, kept as regular tests.


def test_shrunk_strips_so_alike_that_val_is_empty(tmp_path):
    """Six 1 x 24 px strips, all near-duplicates of each other, so one split holds them all: stage
    train crashed on the empty val split (argmax of an empty sequence); count now refuses (with
    count.min_test_per_class, already because the class is one split unit)."""
    strip = ImageSpec((1, 24), "L", "dcm")
    ds = Dataset(
        classes=["mild", "moderate acne"], images={"mild": [strip] * 3, "moderate acne": [strip] * 3}
    )
    proc, _ = run_pipeline(ds, tmp_path / "quota")
    assert stderr_lines(proc) == [
        "error: class mild has 3 image(s) in 1 split unit(s) (duplicates and groups stay in one split); "
        "count.min_test_per_class 2 needs at least 5 (2 val, 2 test, 1 train): add images, or lower "
        "count.min_test_per_class"
    ]
    proc, _ = run_pipeline(ds, tmp_path / "none", {"count": {"min_test_per_class": 0}})
    assert stderr_lines(proc) == [
        "error: the val split is empty (6 images in all, hash split); add images, or raise count.split.val"
    ]
    assert proc.returncode == 1 and "stage count exited 1" in proc.stdout

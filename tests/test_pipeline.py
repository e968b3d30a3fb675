"""End to end: a tiny `dvc repro` in a copy of the repository, then the CONTRACT checks."""

from __future__ import annotations

import json
import os
import sys

import pandas as pd
import pytest
from conftest import run

from stages.core import manifest
from stages.core.hashing import sha256_file

pytestmark = pytest.mark.slow


def test_contract_invariants_hold(built_repo):
    fused = manifest.read(built_repo / "data/fused/manifest.csv")
    assert manifest.check_invariants(fused) == []
    # and, spelled out, the CONTRACT's three invariants
    assert set(fused[fused.split != "train"].origin) == {"real"}
    derived = fused[fused.origin != "real"]
    train_real = set(fused[(fused.origin == "real") & (fused.split == "train")].root)
    assert (derived.split == "train").all()
    assert derived.root[derived.root != ""].isin(train_real).all()
    real = fused[fused.origin == "real"]
    assert real.groupby("root").split.nunique().max() == 1
    split_of = dict(zip(fused.path, fused.split)) | dict(zip(real.root, real.split))
    flips = fused[fused.origin == "flip"]
    assert len(flips) > 0
    assert all(split_of[s] == sp for s, sp in zip(flips.source, flips.split))


def test_every_file_is_in_the_manifest_with_its_checksum(built_repo):
    root = built_repo / "data/fused"
    fused = manifest.read(root / "manifest.csv")
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.csv"}
    assert on_disk == set(fused.path)
    for r in fused.sample(min(40, len(fused)), random_state=0).itertuples():
        assert sha256_file(root / r.path) == r.sha256, r.path


def test_real_files_are_hard_links_to_raw(built_repo):
    fused = manifest.read(built_repo / "data/fused/manifest.csv")
    for r in fused[fused.origin == "real"].head(10).itertuples():
        assert os.path.samefile(built_repo / "data/fused" / r.path, built_repo / "data/raw" / r.source)


def test_train_is_balanced_to_target_and_counts_json_follows_contract(built_repo):
    counts = json.loads((built_repo / "metrics/counts.json").read_text())
    assert set(counts) >= {"raw", "splits", "target", "generated"}
    fused = manifest.read(built_repo / "data/fused/manifest.csv")
    train = fused[(fused.split == "train") & (fused.origin != "flip")]
    per_class = train.label.value_counts().to_dict()
    assert per_class == counts["target"]
    for label, methods in counts["generated"].items():
        made = train[(train.label == label) & (train.origin != "real")].origin.value_counts().to_dict()
        assert made == {m: n for m, n in methods.items() if n > 0}


def test_eval_metrics_follow_contract(built_repo):
    ev = json.loads((built_repo / "metrics/eval.json").read_text())
    classes = pd.read_csv(built_repo / "metrics/plots/confusion/balanced.csv").actual.unique()
    assert {"accuracy", "balanced_accuracy", "macro_f1", "per_class"} <= set(ev)
    assert set(classes) <= set(ev["per_class"])
    for m in ev["per_class"].values():
        assert {"precision", "recall", "f1"} <= set(m)


def test_second_repro_does_nothing(built_repo):
    out = run([sys.executable, "-m", "dvc", "repro"], built_repo).stdout
    assert "Running stage" not in out
    status = run([sys.executable, "-m", "dvc", "status", "--json"], built_repo).stdout
    assert json.loads(status) == {}

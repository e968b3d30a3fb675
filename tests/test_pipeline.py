"""End to end: a tiny `dvc repro` in a copy of the repository, then the CONTRACT checks."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import imagehash
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_built, run, set_params
from PIL import Image

from rebalance.core import manifest
from rebalance.core.hashing import sha256_file

pytestmark = pytest.mark.slow


def test_contract_invariants_hold(built_repo):
    fused = manifest.read(built_repo / "data/fused/manifest.csv")  # the CONTRACT's invariants, spelled out
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
    beside = {"manifest.csv", "README.md", "croissant.json", ".gitignore"}  # the listing, card, Croissant
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - beside
    assert on_disk == set(fused.path)
    for r in fused.sample(min(40, len(fused)), random_state=0).itertuples():
        assert sha256_file(root / r.path) == r.sha256, r.path


def test_flips_are_packed_once_and_unpacked_into_the_release(built_repo):
    """data/flipped holds no per-flip file (DVC tracks each flip once, in data/fused): its tars
    hold every flip, at the manifest's offset, with the manifest's checksum, and data/fused's
    file of each flip has exactly those bytes."""
    from rebalance.dataset import shards

    flipped = built_repo / "data/flipped"
    files = {p.relative_to(flipped).as_posix() for p in flipped.rglob("*") if p.is_file()}
    tars = {f for f in files if f.startswith("shards/flip-") and f.endswith(".tar")}
    assert tars and files - tars == {"manifest.csv", "fingerprints.csv"}
    rows = manifest.read(flipped / "manifest.csv")
    assert len(rows) == (manifest.read(built_repo / "data/fused/manifest.csv").origin == "flip").sum()
    for r in rows.itertuples():
        data = shards.source(flipped, r).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.sha256, r.path
        assert (built_repo / "data/fused" / r.path).read_bytes() == data, r.path


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
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'scan':"], out  # only the source's listing, which is always re-made
    status = run([sys.executable, "-m", "dvc", "status", "--json"], built_repo).stdout
    assert json.loads(status) == {"scan": ["always changed"]}  # dvc.yaml always_changed: nothing else


def test_split_is_the_hash_of_each_images_content(built_repo):
    """The CONTRACT rule: split = f(count.seed, identity), then a class short of
    count.min_test_per_class test (then val) images takes its train images of lowest u; recomputed
    here from the raw images' own decoded pixels in a few lines of plain Python (the demo has no
    duplicates or groups)."""
    params = yaml.safe_load((built_repo / "params.yaml").read_text())
    seed, fractions = params["count"]["seed"], params["count"]["split"]
    minimum = params["count"].get("min_test_per_class", 2)
    counts = json.loads((built_repo / "metrics/counts.json").read_text())
    assert counts["split_method"] == "hash" and counts["duplicates"] == []
    assert counts["warnings"] == []  # every class has val and test images
    counted = manifest.read(built_repo / "data/counted/manifest.csv")
    assert len(counted) == sum(counts["raw"].values())
    expected, key = {}, {}
    for path in counted.path:
        im = Image.open(built_repo / "data/raw" / path).convert("RGB")
        pixels = hashlib.sha256(f"{im.width}x{im.height}\n".encode() + im.tobytes()).hexdigest()
        digest = hashlib.sha256(f"{seed}\npixels:{pixels}".encode()).digest()
        key[path] = u = int.from_bytes(digest[:8], "big") / 2**64
        cut_val = fractions["train"] + fractions["val"]
        expected[path] = "train" if u < fractions["train"] else "val" if u < cut_val else "test"
    label = dict(zip(counted.path, counted.label))
    for c in counts["raw"]:  # the quota
        for s in ("test", "val"):
            train = sorted((key[p], p) for p in expected if label[p] == c and expected[p] == "train")
            while sum(expected[p] == s for p in expected if label[p] == c) < minimum:
                expected[train.pop(0)[1]] = s
    assert dict(zip(counted.path, counted.split)) == expected
    for c in counts["raw"]:
        assert min(counts["splits"][s][c] for s in ("val", "test")) >= minimum, c


def test_no_file_has_a_duplicate_in_another_split(built_repo):
    """Every pair of files of data/fused compared by decoding them (imagehash's perceptual hash,
    numpy's bit counts): none within count.near_duplicate_bits lies in two splits."""
    root = built_repo / "data/fused"
    fused = manifest.read(root / "manifest.csv")
    hashes = np.stack([imagehash.phash(Image.open(root / p).convert("RGB")).hash.ravel() for p in fused.path])
    bits = (hashes[:, None, :] != hashes[None, :, :]).sum(-1)  # every pair's Hamming distance
    split = fused.split.to_numpy()
    across = split[:, None] != split[None, :]
    assert not (across & (bits <= 4)).any()  # count.near_duplicate_bits (default)
    real = (fused.origin == "real").to_numpy()
    distinct = real[:, None] & real[None, :] & ~np.eye(len(fused), dtype=bool)
    assert bits[distinct].min() >= 12  # distinct demo images are >= 12 bits apart


def test_test_set_identity_is_written_by_fuse(built_repo):
    info = json.loads((built_repo / "metrics/test_set.json").read_text())
    fused = manifest.read(built_repo / "data/fused/manifest.csv")
    test = fused[(fused.split == "test") & (fused.origin == "real")].sort_values("path")
    assert info["n"] == len(test) and [i["path"] for i in info["images"]] == list(test.path)
    assert {i["label"] for i in info["images"]} == set(test.label)
    ev = json.loads((built_repo / "metrics/eval.json").read_text())
    assert info["sha256"] == ev["test_set"]


@pytest.mark.slow
def test_compute_settings_that_change_no_result_rerun_nothing(built_repo, tmp_path):
    """Stages depend on compute.device, .precision and .threads (float results move with them),
    not on workers, processes or in_memory_mb (same pixels in the same order): tuning those on a
    new machine must not retrain every model."""
    repo = copy_built(built_repo, tmp_path / "repo")

    def stale() -> set[str]:
        out = run([sys.executable, "-m", "dvc", "status", "--json"], repo).stdout
        return set(json.loads(out or "{}")) - {"scan"}  # scan lists the source: always changed

    set_params(repo, {"compute": {"workers": 0, "processes": 1, "in_memory_mb": 1}})
    assert stale() == set()
    set_params(repo, {"compute": {"threads": 2}})  # (the tiny build's: 1)
    assert {"train_generator@diffusion", "assess", "evaluate", "train@balanced"} <= stale()


def test_a_new_plan_retrains_no_generator(built_repo, tmp_path):
    """Generators and the detector depend on the split (data/counted/manifest.csv), not on the
    plan beside it: a new count.target changes what synthesize makes, and re-trains nothing."""
    repo = copy_built(built_repo, tmp_path / "repo")
    set_params(repo, {"count": {"target": {"strategy": "fixed", "n": 18}}})
    run([sys.executable, "-m", "dvc", "repro", "count"], repo)
    stale = set(json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], repo).stdout))
    assert "synthesize" in stale and not stale & {"detect", "train_generator@diffusion"}, stale


def test_the_artifact_carries_its_dataset_card(built_repo):
    """data/fused/README.md: dataset-card front matter, the sections a consumer needs, and each
    class's synthetic share as counted here from the manifest."""
    import yaml

    fused = manifest.read(built_repo / "data/fused/manifest.csv")
    text = (built_repo / "data/fused/README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] and front["task_categories"]
    assert "machine-generated" in front["annotations_creators"]  # the synthetic images' labels
    n = len(fused)
    assert front["size_categories"] == ["n<1K" if n < 1000 else "1K<n<10K"]
    for section in ("## Intended use", "## Out-of-scope use", "## Limitations", "## Licence", "### Verdict",
                    "## Release gate", "## Generators", "## Use it"):  # fmt: skip
        assert section in text, section
    train = fused[fused.split == "train"]
    for label, part in train.groupby("label"):
        share = (~part.origin.isin(["real", "flip"])).sum() / len(part)
        assert f"{label} {share:.0%}" in text

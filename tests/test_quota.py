"""count.min_test_per_class: every class gets val and test images, checked on stage count's
manifest against a few lines of plain Python (not the pipeline's own split code)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from imagegen import make_folder, one_line_error, stage, workdir
from PIL import Image
from test_split import FRACTIONS, real_set

from rebalance.core import manifest
from rebalance.core.errors import RebalanceError
from rebalance.dataset import split

# make_folder seed 5, count.seed 42: the hash alone leaves class c (14 images) without a test image
# and with one val image, class b with one val image
SIZES = {"a": 30, "b": 20, "c": 14}


def hash_split(work: Path, seed: int, fractions: dict[str, float]) -> tuple[dict, dict, dict]:
    """{path: split} as the hash draws it, {path: u}, {path: label}, from data/raw's decoded pixels."""
    counted = manifest.read(work / "data/counted/manifest.csv")
    drawn, key, label = {}, {}, {}
    for path, lab in zip(counted.path, counted.label):
        im = Image.open(work / "data/raw" / path).convert("RGB")
        pixels = hashlib.sha256(f"{im.width}x{im.height}\n".encode() + im.tobytes()).hexdigest()
        digest = hashlib.sha256(f"{seed}\npixels:{pixels}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        cut_val = fractions["train"] + fractions["val"]
        drawn[path] = "train" if u < fractions["train"] else "val" if u < cut_val else "test"
        key[path], label[path] = u, lab
    return drawn, key, label


def with_quota(drawn: dict, key: dict, label: dict, minimum: int) -> dict:
    """The quota rule (no duplicates or groups here): a class short in test, then in val, takes
    its train images with the lowest u."""
    out = dict(drawn)
    for c in sorted(set(label.values())):
        for s in ("test", "val"):
            train = sorted((key[p], p) for p in out if label[p] == c and out[p] == "train")
            while sum(out[p] == s for p in out if label[p] == c) < minimum:
                out[train.pop(0)[1]] = s
            assert train, c  # train keeps one
    return out


def test_every_class_gets_its_val_and_test_quota(tmp_path):
    src = tmp_path / "src"
    make_folder(src, SIZES, seed=5)
    work = workdir(tmp_path, src, list(SIZES), {"count": {"seed": 42}})
    stage(work, "raw")
    out = stage(work, "count").stdout
    counted = manifest.read(work / "data/counted/manifest.csv")
    per = Counter(zip(counted.label, counted.split))
    for c in SIZES:
        assert per[c, "train"] >= 1 and per[c, "val"] >= 2 and per[c, "test"] >= 2, (c, per)
    drawn, key, label = hash_split(work, 42, FRACTIONS)
    assert sum(1 for p, s in drawn.items() if label[p] == "c" and s == "test") == 0  # needed the quota
    expected = with_quota(drawn, key, label, 2)
    assert dict(zip(counted.path, counted.split)) == expected
    counts = json.loads((work / "metrics/counts.json").read_text())
    moved = {
        c: dict(Counter(s for p, s in expected.items() if label[p] == c and drawn[p] != s)) for c in SIZES
    }
    assert counts["topped_up"] == {c: m for c, m in moved.items() if m} and "c" in counts["topped_up"]
    assert "Quota: class c had too few test and val images" in out

    # min 3: the images already moved stay where they are, the next lowest join them
    (tmp_path / "three").mkdir()
    work3 = workdir(tmp_path / "three", src, list(SIZES), {"count": {"seed": 42, "min_test_per_class": 3}})
    stage(work3, "raw")
    stage(work3, "count")
    three = manifest.read(work3 / "data/counted/manifest.csv")
    assert dict(zip(three.path, three.split)) == with_quota(drawn, key, label, 3)


def test_a_class_too_small_for_the_quota_is_a_one_line_error(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 12, "b": 4})
    work = workdir(tmp_path, src, ["a", "b"])
    stage(work, "raw")
    line = one_line_error(stage(work, "count", check=False))
    assert line == (
        "error: class b has 4 image(s); count.min_test_per_class 2 needs at least 5 (2 val, 2 test, "
        "1 train): add images, or lower count.min_test_per_class"
    )
    (tmp_path / "one").mkdir()
    work = workdir(tmp_path / "one", src, ["a", "b"], {"count": {"min_test_per_class": 1}})
    stage(work, "raw")
    stage(work, "count")
    counted = manifest.read(work / "data/counted/manifest.csv")
    assert set(counted[counted.label == "b"].split) == {"train", "val", "test"}

    small = tmp_path / "small"
    make_folder(small, {"a": 12, "b": 2})  # fewer than 3: no value of the quota helps
    (tmp_path / "two").mkdir()
    work = workdir(tmp_path / "two", small, ["a", "b"])
    stage(work, "raw")
    line = one_line_error(stage(work, "count", check=False))
    assert "class b has 2 image(s)" in line and "at least 3" in line


def test_the_quota_moves_whole_sets_and_leaves_classes_that_have_it():
    real = real_set({"a": 60, "b": 6})
    b = [n for n, c in real.images if c == "b"]
    real.groups = {n: "p0" for n in b[:2]}  # one patient of two images: 5 split units
    # seed 12 draws all six into train: test takes the two lowest u, val the next (the patient, whole)
    before = split.make(real, ["a", "b"], FRACTIONS, 12, 4)
    assert {before.assignment[n] for n in b} == {"train"}
    out = split.make(real, ["a", "b"], FRACTIONS, 12, 4, min_test=2)
    order = sorted(b, key=lambda n: split.unit(12, before.identity[n]))
    expected = dict(zip(order, ["test", "test", "val", "val", "train", "train"]))
    assert set(real.groups) == set(order[2:4]) and {n: out.assignment[n] for n in b} == expected
    assert out.topped_up == {"b": {"test": 2, "val": 2}}
    assert {n: s for n, s in out.assignment.items() if n not in b} == {
        n: s for n, s in before.assignment.items() if n not in b
    }  # class a had its quota: not one image moved
    with pytest.raises(RebalanceError, match=r"class b has 6 image\(s\) in 5 split unit\(s\)"):
        split.make(real, ["a", "b"], FRACTIONS, 12, 4, min_test=3)

    # seed 10: b has 4 test images and 2 train; val takes the lower train one (train keeps the
    # other), then the lowest test image test can spare (a single image: the patient would leave 2)
    out = split.make(real, ["a", "b"], FRACTIONS, 10, 4, min_test=2)
    per = Counter(out.assignment[n] for n in b)
    assert per == {"train": 1, "val": 2, "test": 3} and out.topped_up == {"b": {"val": 2}}


def test_an_official_split_keeps_its_test_and_fills_the_val_it_draws():
    """Kaggle's train/ test/: the official test stays as given (even short), val is drawn from
    train and filled to the quota."""
    real = real_set({"a": 40, "b": 8})
    real.official = {
        n: "test" if i % 4 == 0 and c == "a" else "train" for i, (n, c) in enumerate(real.images)
    }
    before = split.make(real, ["a", "b"], FRACTIONS, 1, 4)
    out = split.make(real, ["a", "b"], FRACTIONS, 1, 4, min_test=2)
    assert all(out.assignment[n] == "test" for n, s in real.official.items() if s == "test")
    per = Counter((c, out.assignment[n]) for n, c in real.images)
    assert per["b", "val"] >= 2 and per["b", "train"] >= 1 and per["b", "test"] == 0
    assert sum(1 for n, c in real.images if c == "b" and before.assignment[n] == "val") < 2  # filled
    assert out.drawn["val"] == sum(s == "val" for s in out.assignment.values())
    assert any("class b: no test image" in w for w in out.warnings)
    real.official |= {
        n: "train" if n in ("b/0.png", "b/1.png") else "test" for n, c in real.images if c == "b"
    }
    with pytest.raises(RebalanceError, match="class b has 2 split unit.s. in the source's train to draw val"):
        split.make(real, ["a", "b"], FRACTIONS, 1, 4, min_test=2)

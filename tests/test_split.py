"""The split and duplicate search as functions: stable, content-aware, scalable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from imagegen import reencode, smooth_image

from rebalance.core.errors import RebalanceError
from rebalance.dataset import duplicates, split
from rebalance.dataset.split import RealSet

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def test_draw_is_a_function_of_seed_and_identity_only():
    ids = [f"pixels:{i:064x}" for i in range(20000)]
    a = [split.draw(42, i, FRACTIONS) for i in ids]
    assert a == [split.draw(42, i, FRACTIONS) for i in ids]
    assert a != [split.draw(43, i, FRACTIONS) for i in ids]
    for s, f in FRACTIONS.items():
        assert abs(a.count(s) / len(ids) - f) < 0.01


def test_near_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**64, 2000, dtype=np.uint64)
    h[100:200] = h[:100] ^ np.uint64(0b1011)  # 3 bits apart
    h[200:300] = h[:100] ^ (np.uint64(1) << np.uint64(63)) ^ np.uint64(0xF0)  # 5 bits apart
    codes = rng.integers(0, 3, len(h))
    close = np.bitwise_count(h[:, None] ^ h[None, :])
    for bits in (0, 3, 4, 5, 9):
        i, j = np.nonzero(np.triu(close <= bits, 1))
        brute = sorted(zip(i.tolist(), j.tolist()))
        hashes = [int(x) for x in h]
        assert duplicates.near_pairs(hashes, bits) == brute
        assert duplicates.near_pairs(hashes, bits, codes) == [
            (a, b) for a, b in brute if codes[a] != codes[b]
        ]


def test_near_pairs_scale_without_all_pairs():
    rng = np.random.default_rng(1)
    h = rng.integers(0, 2**64, 120_000, dtype=np.uint64)
    h[-1] = h[7] ^ np.uint64(0b101)
    assert (7, len(h) - 1) in duplicates.near_pairs((int(x) for x in h), 4)


def test_fingerprint_is_of_decoded_pixels(tmp_path: Path):
    im = smooth_image(np.random.default_rng(0))
    im.save(tmp_path / "x.png")
    im.save(tmp_path / "x.bmp")
    reencode(tmp_path / "x.png", tmp_path / "x.jpg")
    png, bmp, jpg = duplicates.of_files([tmp_path / n for n in ("x.png", "x.bmp", "x.jpg")])
    assert png == bmp
    assert jpg.pixels != png.pixels and duplicates.distance(jpg.phash, png.phash) <= 4
    assert duplicates.describe(png, bmp).startswith("exact") and "near" in duplicates.describe(png, jpg)


def real_set(n_per_class: dict[str, int], seed: int = 0) -> RealSet:
    rng = np.random.default_rng(seed)
    images = sorted((f"{c}/{i}.png", c) for c, n in n_per_class.items() for i in range(n))
    prints = [duplicates.of_image(smooth_image(rng)) for _ in images]
    return RealSet(images, Path("data/raw"), prints)


def test_adding_images_moves_none():
    small = real_set({"a": 50, "b": 30})
    big = real_set({"a": 50, "b": 30})
    extra = real_set({"a": 7, "b": 3}, seed=9)
    big.images += [(f"new_{n}", c) for n, c in extra.images]
    big.prints += extra.prints
    before = split.make(small, ["a", "b"], FRACTIONS, 42, 4).assignment
    after = split.make(big, ["a", "b"], FRACTIONS, 42, 4).assignment
    assert {n: after[n] for n in before} == before and len(after) == len(before) + 10


def test_groups_and_duplicates_are_joined():
    real = real_set({"a": 30, "b": 30})
    real.groups = {n: f"p{i % 5}" for i, (n, _) in enumerate(real.images) if i < 20}
    real.prints[40] = real.prints[45]  # an exact duplicate within class b
    out = split.make(real, ["a", "b"], FRACTIONS, 42, 4)
    names = [n for n, _ in real.images]
    for p in {f"p{i}" for i in range(5)}:
        assert len({out.assignment[n] for n, g in real.groups.items() if g == p}) == 1
    assert out.assignment[names[40]] == out.assignment[names[45]]
    assert out.duplicates == [[names[40], names[45]]]
    assert out.identity[names[0]] == "group:p0"


def test_classes_need_three_images_and_missing_val_test_is_a_warning():
    with pytest.raises(RebalanceError, match="class b has 2 image"):
        split.make(real_set({"a": 10, "b": 2}), ["a", "b"], FRACTIONS, 0, 4)
    real = real_set({"a": 10, "b": 3})
    for seed in range(200):
        try:
            out = split.make(real, ["a", "b"], FRACTIONS, seed, 4)
        except RebalanceError as err:  # no train image of a class, or no val or test image at all: errors
            assert "none of its 3 images is in train" in str(err) or "split is empty" in str(err)
            continue
        if out.warnings:
            assert all(w.startswith("class b: no ") for w in out.warnings)
            return
    pytest.fail("no seed left class b without a val or test image")


def test_same_pixels_under_two_labels():
    real = real_set({"a": 5, "b": 5})
    real.prints[7] = real.prints[2]
    with pytest.raises(RebalanceError, match=r"a/2\.png \(a\) and data/raw/b/2\.png \(b\)"):
        split.make(real, ["a", "b"], FRACTIONS, 0, 4)


def test_max_per_class_keeps_whole_groups_and_stays_stable():
    """The ISIC 2024 SD+LoRA study's sampled majority class:
    count.max_per_class keeps at most n images of a class,
    never splits a group or a duplicate set, leaves other classes alone, and adding images keeps
    the images already kept (unless the added ones take their place in the seeded order)."""
    real = real_set({"a": 200, "b": 20})
    names = [n for n, _ in real.images]
    real.groups = {n: f"p{i % 10}" for i, n in enumerate(names[:60])}  # 10 patients of 6 images
    real.prints[100] = real.prints[101]  # an exact duplicate pair in class a
    out = split.make(real, ["a", "b"], FRACTIONS, 42, 4, {"a": 50})
    kept_a = [n for n, c in real.images if c == "a" and n in out.assignment]
    assert 44 <= len(kept_a) <= 50 and out.sampled_out == {"a": 200 - len(kept_a)}
    assert sum(1 for n, c in real.images if c == "b" and n in out.assignment) == 20
    for p in {f"p{i}" for i in range(10)}:  # a patient is all in or all out
        assert len({n in out.assignment for n, g in real.groups.items() if g == p}) == 1
    assert (names[100] in out.assignment) == (names[101] in out.assignment)
    whole = split.make(real, ["a", "b"], FRACTIONS, 42, 4)
    assert all(out.assignment[n] == whole.assignment[n] for n in out.assignment)  # same split, fewer
    with pytest.raises(RebalanceError, match="count.max_per_class: 'c' is not in dataset.classes"):
        split.make(real, ["a", "b"], FRACTIONS, 42, 4, {"c": 5})
    big = real_set({"a": 200, "b": 20})
    big.groups, big.prints[100] = dict(real.groups), big.prints[101]
    extra = real_set({"a": 20}, seed=9)
    big.images += [(f"new_{n}", c) for n, c in extra.images]
    big.prints += extra.prints
    grown = split.make(big, ["a", "b"], FRACTIONS, 42, 4, {"a": 50})
    lost = [n for n in kept_a if n not in grown.assignment]
    assert len(lost) <= sum(1 for n in grown.assignment if n.startswith("new_"))


def test_an_official_split_without_val_draws_it_from_train_whole_sets_and_stably():
    """Kaggle's train/ test/ folders: val is drawn from the official train images by identity
    (groups and duplicate sets whole, count.split's proportions), the official test stays exact,
    and adding images moves none of the others."""
    real = real_set({"a": 120, "b": 60})
    names = [n for n, _ in real.images]
    real.official = {n: "test" if i % 5 == 0 else "train" for i, n in enumerate(names)}
    real.groups = {n: f"p{i // 4}" for i, n in enumerate(names[:80]) if i % 5}  # train patients of 3-4
    real.prints[11] = real.prints[12]  # an exact duplicate pair, both in train
    out = split.make(real, ["a", "b"], FRACTIONS, 42, 4)
    assert out.method == "official" and set(out.drawn) == {"val"}
    assert all(out.assignment[n] == "test" for n, s in real.official.items() if s == "test")
    val = [n for n, s in out.assignment.items() if s == "val"]
    assert out.drawn["val"] == len(val) and all(real.official[n] == "train" for n in val)
    train_before = sum(1 for s in real.official.values() if s == "train")
    assert abs(len(val) / train_before - 0.15 / 0.85) < 0.08
    for p in set(real.groups.values()):
        assert len({out.assignment[n] for n, g in real.groups.items() if g == p}) == 1
    assert out.assignment[names[11]] == out.assignment[names[12]]
    grown = real_set({"a": 120, "b": 60})
    grown.official, grown.groups, grown.prints[11] = dict(real.official), dict(real.groups), grown.prints[12]
    extra = real_set({"a": 10}, seed=9)
    grown.images += [(f"new_{n}", c) for n, c in extra.images]
    grown.prints += extra.prints
    grown.official |= {f"new_{n}": "train" for n, _ in extra.images}
    after = split.make(grown, ["a", "b"], FRACTIONS, 42, 4).assignment
    assert {n: after[n] for n in out.assignment} == out.assignment
    real.groups = {}
    real.official = {n: "val" if i % 7 == 0 else s for i, (n, s) in enumerate(real.official.items())}
    assert split.make(real, ["a", "b"], FRACTIONS, 42, 4).drawn == {}  # a val of its own: kept as is


def test_a_released_test_set_is_kept_while_the_source_grows():
    """After a release, its test images stay test; a new image never enters test (drawn among
    train and val); one joined to a released test image (a copy, the same patient) is left out;
    images gone from the source are counted."""
    small = real_set({"a": 60, "b": 40})
    before = split.make(small, ["a", "b"], FRACTIONS, 42, 4, min_test=2).assignment
    test = sorted(n for n, s in before.items() if s == "test")
    gone = test[0]
    released = split.ReleasedTest("demo@v1.0.0", frozenset(test))
    big = real_set({"a": 60, "b": 40})
    extra = real_set({"a": 40, "b": 30}, seed=9)
    big.images += [(f"new_{n}", c) for n, c in extra.images]
    big.prints += extra.prints
    names = [n for n, _ in big.images]
    big.images.append(("copy_of_test.png", dict(big.images)[test[1]]))
    big.prints.append(big.prints[names.index(test[1])])  # an exact copy of a released test image
    drop = names.index(gone)
    del big.images[drop], big.prints[drop]

    unkept = split.make(big, ["a", "b"], FRACTIONS, 42, 4, min_test=2)
    new = [n for n, _ in big.images if n.startswith("new_")]
    assert any(unkept.assignment[n] == "test" for n in new)  # without the release, some would be test

    out = split.make(big, ["a", "b"], FRACTIONS, 42, 4, min_test=2, released=released)
    assert sorted(n for n, s in out.assignment.items() if s == "test") == sorted(set(test) - {gone})
    assert all(out.assignment[n] in ("train", "val") for n in new)
    assert out.held_out == {"copy_of_test.png": "a duplicate or group member of a test image of demo@v1.0.0"}
    assert "copy_of_test.png" not in out.assignment
    assert out.kept_test == {
        "release": "demo@v1.0.0",
        "kept": len(test) - 1,
        "gone": [gone],
        "redrawn": sum(unkept.assignment[n] == "test" for n in new),
    }
    for n, s in before.items():  # every image that was in train or val stays there
        if s != "test" and n in out.assignment:
            assert out.assignment[n] == s, n

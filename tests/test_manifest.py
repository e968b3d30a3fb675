"""The manifest's invariant checker catches each kind of leakage."""

from __future__ import annotations

from rebalance.core import manifest


def rows(*extra):
    base = [
        manifest.row(
            path="train/a/1.jpg", split="train", label="a", origin="real", source="a/1.jpg", root="a/1.jpg"
        ),
        manifest.row(
            path="test/a/2.jpg", split="test", label="a", origin="real", source="a/2.jpg", root="a/2.jpg"
        ),
        manifest.row(
            path="train/a/e.png",
            split="train",
            label="a",
            origin="lesion_edit",
            source="a/1.jpg",
            root="a/1.jpg",
        ),
        manifest.row(
            path="train/a/1_flip.png",
            split="train",
            label="a",
            origin="flip",
            source="a/1.jpg",
            root="a/1.jpg",
        ),
    ]
    return manifest.frame(base + list(extra))


def test_clean_manifest_passes():
    assert manifest.check_invariants(rows()) == []


def test_synthetic_in_test_is_caught():
    bad = manifest.row(path="test/a/e2.png", split="test", label="a", origin="diffusion", source="", root="")
    assert any("real-only" in p for p in manifest.check_invariants(rows(bad)))
    assert manifest.check_invariants(rows(bad), synthetic_in_eval=True) == []


def test_synthetic_from_a_test_image_is_caught():
    bad = manifest.row(
        path="train/a/e3.png",
        split="train",
        label="a",
        origin="lesion_edit",
        source="a/2.jpg",
        root="a/2.jpg",
    )
    assert any("not a train real image" in p for p in manifest.check_invariants(rows(bad)))


def test_flip_in_another_split_than_its_source_is_caught():
    bad = manifest.row(
        path="train/a/2_flip.png", split="train", label="a", origin="flip", source="a/2.jpg", root="a/2.jpg"
    )
    problems = manifest.check_invariants(rows(bad))
    assert any("flip in train but its source" in p for p in problems)


def test_raw_image_in_two_splits_is_caught():
    bad = manifest.row(
        path="val/a/1.jpg", split="val", label="a", origin="real", source="a/1.jpg", root="a/1.jpg"
    )
    assert any("more than one split" in p for p in manifest.check_invariants(rows(bad)))


def test_round_trip(tmp_path):
    df = rows()
    manifest.write(df, tmp_path / "m.csv")
    back = manifest.read(tmp_path / "m.csv")
    assert back.equals(df)


def test_nested_counts():
    assert manifest.nested_counts(rows(), ["split", "label", "origin"]) == {
        "test": {"a": {"real": 1}},
        "train": {"a": {"flip": 1, "lesion_edit": 1, "real": 1}},
    }

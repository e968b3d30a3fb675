"""Content-aware splits and leak checks, stage by stage on small folder datasets (no DVC).

Each test builds a source folder of small images, runs stages raw/count/flip/fuse in a throw-away
work folder, injects one fault and asserts the one-line refusal (naming both files).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from imagegen import make_folder, one_line_error, reencode, stage, workdir
from PIL import Image

from rebalance.core import manifest
from rebalance.core.hashing import sha256_file, sha256_text


def assignment(work: Path) -> dict[str, str]:
    df = manifest.read(work / "data/counted/manifest.csv")
    return dict(zip(df.path, df.split))


def build_to_fuse(work: Path) -> None:
    """raw, count, no synthetic images, flip, fuse."""
    stage(work, "raw")
    stage(work, "count")
    manifest.write([], work / "data/synthesized/manifest.csv")
    stage(work, "flip")
    stage(work, "fuse")


def test_adding_images_moves_no_earlier_image(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 30, "b": 20})
    work = workdir(tmp_path, src, ["a", "b"])
    stage(work, "raw")
    stage(work, "count")
    before = assignment(work)
    make_folder(src, {"a": 5, "b": 5}, seed=1, prefix="new")  # 10 more images
    stage(work, "raw")
    stage(work, "count")
    after = assignment(work)
    assert len(after) == len(before) + 10
    assert {n: after[n] for n in before} == before
    # and removing images moves none either
    for path in sorted(src.rglob("new*.png"))[:6] + sorted(src.rglob("1*.png"))[:3]:
        path.unlink()
    stage(work, "raw")
    stage(work, "count")
    assert all(before.get(n, s) == s for n, s in assignment(work).items())


def test_same_image_under_two_labels_is_a_one_line_error(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 8, "b": 8})
    Image.open(src / "a/3.png").save(src / "b/copy.bmp")  # same pixels, another format
    work = workdir(tmp_path, src, ["a", "b"])
    stage(work, "raw")
    line = one_line_error(stage(work, "count", check=False))
    assert "a/3.png" in line and "b/copy.bmp" in line and "two labels" in line


def test_duplicates_in_one_class_share_a_split_and_are_reported(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 20, "b": 12})
    groups = []
    for i in range(8):  # an exact copy (BMP) and a JPEG re-encode of 8 images
        Image.open(src / f"a/{i}.png").save(src / f"a/{i}_copy.bmp")
        reencode(src / f"a/{i}.png", src / f"a/{i}_q90.jpg")
        groups.append(sorted([f"a/{i}.png", f"a/{i}_copy.bmp", f"a/{i}_q90.jpg"]))
    for seed in (0, 1, 2):
        work = workdir(tmp_path, src, ["a", "b"], {"count": {"seed": seed}})
        stage(work, "raw")
        proc = stage(work, "count")
        split = assignment(work)
        for group in groups:
            assert len({split[n] for n in group}) == 1, (seed, group, [split[n] for n in group])
        counts = json.loads((work / "metrics/counts.json").read_text())
        assert sorted(counts["duplicates"]) == groups
        assert "duplicates: " in proc.stdout and "a/0_q90.jpg" in proc.stdout


def official_source(root: Path) -> Path:
    """train/ val/ test/ folders, each with class folders a and b."""
    for i, (s, n) in enumerate({"train": 12, "val": 4, "test": 4}.items()):
        make_folder(root / s, {"a": n, "b": n}, seed=10 + i, prefix=f"{s}_")
    return root


def test_official_split_folders_are_kept(tmp_path):
    src = official_source(tmp_path / "src")
    work = workdir(tmp_path, src, ["a", "b"])
    build_to_fuse(work)
    split = assignment(work)
    assert split["a/test/test_0.png"] == "test" and split["b/val/val_3.png"] == "val"
    assert all(name.split("/")[1] == s for name, s in split.items())  # data/raw/<class>/<split>/<file>
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert counts["split_method"] == "official"
    assert counts["splits"]["test"] == {"a": 4, "b": 4}
    assert (work / "data/fused/test/a/test/test_0.png").is_file()


def test_official_split_leak_is_refused_by_fuse_and_left_out_by_count(tmp_path):
    src = official_source(tmp_path / "src")
    work = workdir(tmp_path, src, ["a", "b"])
    build_to_fuse(work)
    # fuse: inject a re-encoded copy of a test image as a real train image, past count
    reencode(work / "data/raw/a/test/test_1.png", work / "data/raw/a/train/leak.jpg")
    counted = manifest.read(work / "data/counted/manifest.csv")
    leak = manifest.row(
        path="a/train/leak.jpg",
        split="train",
        label="a",
        origin="real",
        source="a/train/leak.jpg",
        root="a/train/leak.jpg",
        sha256=sha256_file(work / "data/raw/a/train/leak.jpg"),
    )
    manifest.write(pd.concat([counted, manifest.frame([leak])]), work / "data/counted/manifest.csv")
    line = one_line_error(stage(work, "fuse", check=False))
    assert "test/a/test/test_1.png" in line and "train/a/train/leak.jpg" in line and "leak" in line
    # count: the same copy put into the source's train folder; the official split is kept for
    # every other image and the test copy is left out (reported), so the test set has no copy in train
    reencode(src / "test/a/test_1.png", src / "train/a/leak.jpg")
    stage(work, "raw")
    proc = stage(work, "count")
    assert "left out" in proc.stdout and "a/test/test_1.png" in proc.stdout
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert (
        list(counts["dropped"]) == ["a/test/test_1.png"]
        and "a/train/leak.jpg" in counts["dropped"]["a/test/test_1.png"]
    )
    kept = assignment(work)
    assert "a/test/test_1.png" not in kept and kept["a/train/leak.jpg"] == "train"


def test_official_split_column_and_its_leak(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 12, "b": 12})
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    official = {"0.png": "test", "1.png": "test", "2.png": "val"}  # with a val of its own: kept exactly
    splits = {n: next((s for end, s in official.items() if n.endswith(end)), "train") for n in names}
    csv = tmp_path / "meta.csv"
    pd.DataFrame({"path": names, "split": [splits[n] for n in names]}).to_csv(csv, index=False)
    work = workdir(tmp_path, src, ["a", "b"], {"dataset": {"metadata": str(csv)}})
    stage(work, "raw")
    stage(work, "count")
    assert assignment(work) == splits
    reencode(src / "a/10.png", src / "a/copy.jpg")  # a test image, copied into train
    pd.DataFrame({"path": [*names, "a/copy.jpg"], "split": [*splits.values(), "train"]}).to_csv(
        csv, index=False
    )
    stage(work, "raw")
    stage(work, "count")  # the test image with a copy in train is left out, every other split kept
    dropped = json.loads((work / "metrics/counts.json").read_text())["dropped"]
    assert list(dropped) == ["a/10.png"] and "a/copy.jpg" in dropped["a/10.png"]
    assert assignment(work) == {**{n: s for n, s in splits.items() if n != "a/10.png"}, "a/copy.jpg": "train"}
    bad = pd.read_csv(csv).assign(split=lambda d: d.split.where(d.path != "b/3.png", "holdout"))
    bad.to_csv(csv, index=False)
    line = one_line_error(stage(work, "raw", check=False))
    assert "b/3.png" in line and "holdout" in line and "`split`" in line


def test_synthetic_copy_of_a_test_image_is_refused_by_fuse(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 20, "b": 20})
    work = workdir(tmp_path, src, ["a", "b"])
    build_to_fuse(work)
    test_image = next(n for n, s in assignment(work).items() if s == "test")
    fake = "train/a/diffusion_a_00000.png"
    reencode(work / "data/raw" / test_image, work / "data/synthesized" / fake)
    row = manifest.row(path=fake, split="train", label="a", origin="diffusion", source="", root="")
    manifest.write(
        [row | {"sha256": sha256_file(work / "data/synthesized" / fake)}],
        work / "data/synthesized/manifest.csv",
    )
    line = one_line_error(stage(work, "fuse", check=False))
    assert f"test/{test_image}" in line and fake in line and "diffusion" in line


def test_fuse_writes_the_test_set(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 20, "b": 20})
    work = workdir(tmp_path, src, ["a", "b"])
    build_to_fuse(work)
    info = json.loads((work / "metrics/test_set.json").read_text())
    fused = manifest.read(work / "data/fused/manifest.csv")
    test = fused[(fused.split == "test") & (fused.origin == "real")].sort_values("path")
    assert info["n"] == len(test) > 0
    assert [i["path"] for i in info["images"]] == list(test.path)
    assert info["sha256"] == sha256_text("".join(f"{p}:{s}\n" for p, s in zip(test.path, test.sha256)))
    assert all(i["sha256"] == sha256_file(work / "data/fused" / i["path"]) for i in info["images"])


def test_a_group_never_spans_two_splits(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 40, "b": 40})
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    patient = {n: f"p{i % 16}" for i, n in enumerate(names)}  # 16 patients, images in both classes
    csv = tmp_path / "meta.csv"
    pd.DataFrame({"path": names, "patient_id": [patient[n] for n in names], "age": 50}).to_csv(
        csv, index=False
    )
    work = workdir(tmp_path, src, ["a", "b"], {"dataset": {"metadata": str(csv), "group_by": "patient_id"}})
    stage(work, "raw")
    stage(work, "count")
    split = assignment(work)
    per_patient = pd.DataFrame({"p": patient, "s": split}).groupby("p").s.nunique()
    assert (per_patient == 1).all() and len(set(split.values())) > 1
    # a patient's split depends on its id only: dropping other patients moves nobody (two val and
    # two test patients kept: every class keeps its count.min_test_per_class quota)
    by_split = {s: sorted({patient[n] for n in names if split[n] == s}) for s in ("val", "test")}
    chosen = {"p1", "p2", "p3", *by_split["val"][:2], *by_split["test"][:2]}
    keep = [n for n in names if patient[n] in chosen]
    for n in set(names) - set(keep):
        (src / n).unlink()
    pd.DataFrame({"path": keep, "patient_id": [patient[n] for n in keep]}).to_csv(csv, index=False)
    stage(work, "raw")
    stage(work, "count")
    assert assignment(work) == {n: split[n] for n in keep}


def test_missing_group_value_is_a_one_line_error(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 6, "b": 6})
    csv = tmp_path / "meta.csv"
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    ids = ["" if n == "b/2.png" else "x" for n in names]
    pd.DataFrame({"path": names, "patient_id": ids}).to_csv(csv, index=False)
    work = workdir(tmp_path, src, ["a", "b"], {"dataset": {"metadata": str(csv), "group_by": "patient_id"}})
    line = one_line_error(stage(work, "raw", check=False))
    assert "b/2.png" in line and "patient_id" in line
    shutil.rmtree(work)
    work = workdir(tmp_path, src, ["a", "b"], {"dataset": {"metadata": str(csv), "group_by": "patient"}})
    line = one_line_error(stage(work, "raw", check=False))
    assert "`patient`" in line and "patient_id" in line


def test_a_class_with_fewer_than_three_images_is_a_one_line_error(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"a": 10, "b": 2})
    work = workdir(tmp_path, src, ["a", "b"])
    stage(work, "raw")
    line = one_line_error(stage(work, "count", check=False))
    assert "class b has 2 image(s)" in line and "at least 3" in line


@pytest.mark.parametrize("layout", ["classes", "splits"])
def test_hidden_folders_are_skipped_and_reported(tmp_path, layout):
    src = tmp_path / "src"
    base = src / "train" if layout == "splits" else src
    make_folder(base, {"a": 6, "b": 6})
    if layout == "splits":
        make_folder(src / "test", {"a": 3, "b": 3}, seed=5, prefix="t")
    (base / "a/.ipynb_checkpoints").mkdir()
    shutil.copy(base / "a/1.png", base / "a/.ipynb_checkpoints/1-checkpoint.png")
    work = workdir(tmp_path, src, ["a", "b"])
    proc = stage(work, "raw")
    hidden = (
        "train/a/.ipynb_checkpoints/1-checkpoint.png"
        if layout == "splits"
        else "a/.ipynb_checkpoints/1-checkpoint.png"
    )
    assert hidden in proc.stdout
    report = json.loads((work / "metrics/raw.json").read_text())
    assert [s["path"] for s in report["skipped"]] == [hidden]
    assert not any(".ipynb_checkpoints" in p.as_posix() for p in (work / "data/raw").rglob("*"))
    stage(work, "count")  # the checkpoint copy is not a duplicate: it was never ingested
    assert json.loads((work / "metrics/counts.json").read_text())["duplicates"] == []

"""Sources as data actually comes: a folder of mixed photographs, a CSV with split and group
columns, a MedMNIST .npz, DICOM; each runs `dvc repro` end to end on files the test makes."""

from __future__ import annotations

import json
from pathlib import Path

import dicomgen
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY, commit_all, copy_repo, folder_params, run, set_params
from imagegen import one_line_error, smooth_image, stage, workdir
from PIL import Image

from rebalance.core import images
from rebalance.dataset import plan

VARIANTS = {"real": {"data": "real"}, "balanced": {"data": "balanced"}}
SMALL = TINY | {
    "train": TINY["train"]
    | {
        "variants": VARIANTS,
        "headline": "balanced",
    },
    "evaluate": {"bootstrap": 20},
    "synthesize": {"methods": {"diffusion": 1.0}, "diffusion": {"steps": 2, "mode": "local"}, "filter": None},
    "count": {"target": {"strategy": "max"}},
    "compute": {"workers": 0, "threads": 1},  # (replaces TINY's compute whole)
}


def photo(rng: np.random.Generator, path: Path, w: int, h: int, grey: bool) -> None:
    """A smooth random photograph of w x h, saved as the suffix says (grey or RGB)."""
    im = smooth_image(rng, 64).resize((w, h), Image.BICUBIC)
    im = im.convert("L") if grey else im
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=92) if path.suffix == ".jpg" else im.save(path)


def repro(tmp_path: Path, source: str, classes: list[str], extra: dict | None = None) -> Path:
    repo = copy_repo(tmp_path / "repo")
    set_params(repo, SMALL)
    set_params(
        repo,
        {"dataset": {"name": "real", "classes": classes, "lesion_bins": None}, "raw": {"source": source}},
    )
    if extra:
        set_params(repo, extra)
    commit_all(repo)
    run(["dvc", "repro"], repo)
    return repo


def counted(repo: Path) -> pd.DataFrame:
    return pd.read_csv(repo / "data/counted/manifest.csv", dtype=str, keep_default_na=False)


@pytest.mark.slow
def test_a_folder_of_mixed_photographs_runs_end_to_end_with_the_gan(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "photos"
    sizes = [(40, 56), (96, 64), (72, 72), (48, 90), (88, 40)]
    for label, n in {"mild": 16, "severe": 7}.items():
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            photo(rng, src / label / f"p{i}{'.jpg' if i % 2 else '.png'}", w, h, grey=i % 3 == 0)
    gan = {"synthesize": {"methods": {"gan": 1.0}}}
    gan["generators"] = {"gan": {"resolution": 16, "channels": 8, "steps": 20}}
    gan["train"] = {"variants": {**VARIANTS, "balanced_gan": {"data": "balanced", "method": "gan"}}}
    repo = repro(tmp_path, str(src), ["mild", "severe"], {"dataset": {"fit": "pad"}, **gan})
    raw = json.loads((repo / "metrics/raw.json").read_text())
    assert raw["images"] == {"mild": 16, "severe": 7} and raw["skipped"] == []
    for f in (src / "mild").iterdir():  # originals untouched in data/raw, byte for byte
        assert (repo / "data/raw/mild" / f.name).read_bytes() == f.read_bytes()
    fused = pd.read_csv(repo / "data/fused/manifest.csv")
    assert (fused[fused.split == "train"].label.value_counts().nunique()) == 1  # balanced
    assert "balanced_accuracy" in json.loads((repo / "metrics/eval.json").read_text())
    assert set(fused.origin) == {"real", "gan", "flip"}  # the GAN method, end to end
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert summary["generators"] == {"gan": "balanced_gan"} and "balanced_gan" in summary["variants"]
    quality = json.loads((repo / "metrics/synthesis_quality.json").read_text())
    assert "gan" in quality["per_method"]
    assert (repo / "metrics/plots/synthesis/samples_gan_severe.png").is_file()  # a grid per method and class


@pytest.mark.slow
def test_a_csv_with_split_and_group_columns_keeps_its_split_exactly(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "isic"
    rows = []
    for i in range(36):
        label = "benign" if i < 26 else "malignant"
        patient = f"p{i // 2:02d}"  # two images per patient
        split = ("train", "train", "train", "val", "test")[(i // 2) % 5]
        path = f"images/{i:03d}.{'jpg' if i % 2 else 'png'}"
        photo(rng, root / path, 48 + (i % 3) * 16, 48, grey=False)
        # labels as names, or as the class index (ISIC's target 0/1)
        rows.append({"path": path, "label": label if i % 4 else str(int(label == "malignant")),
                     "split": split, "group": patient, "age": 30 + i})  # fmt: skip
    rows.append({"path": "images/missing.png", "label": "benign", "split": "train", "group": "p99", "age": 1})
    pd.DataFrame(rows).to_csv(root / "meta.csv", index=False)
    repo = repro(tmp_path, str(root / "meta.csv"), ["benign", "malignant"])

    man = counted(repo)
    given = {f"{'malignant' if i >= 26 else 'benign'}/{r['path']}": r for i, r in enumerate(rows[:-1])}
    assert dict(zip(man.path, man.split)) == {p: r["split"] for p, r in given.items()}  # exactly
    group = {p: r["group"] for p, r in given.items()}
    assert man.groupby(man.path.map(group)).split.nunique().max() == 1  # no group in two splits
    raw = json.loads((repo / "metrics/raw.json").read_text())
    assert raw["skipped"] == [{"path": "images/missing.png", "reason": "file not found"}]
    labels = pd.read_csv(repo / "data/raw/labels.csv", dtype=str)
    assert set(labels.columns) >= {"path", "label", "age", "group"}  # metadata kept for prompts
    assert json.loads((repo / "metrics/counts.json").read_text())["split_method"] == "official"

    # a group that the official split puts in two splits is a one-line error (a leak)
    bad = pd.DataFrame(rows[:-1])
    bad.loc[0, "split"] = "test"
    bad.to_csv(root / "meta.csv", index=False)
    stage(repo, "raw")
    assert "same group 'p00' in two official splits" in one_line_error(stage(repo, "count", check=False))


def medmnist(path: Path, sizes: dict[str, list[int]], size: int = 28) -> dict[str, np.ndarray]:
    """A PneumoniaMNIST-shaped .npz: <split>_images N x size x size uint8, <split>_labels N x 1."""
    rng = np.random.default_rng(2)
    arrays = {}
    for split, per_class in sizes.items():
        labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)]).astype(np.uint8)
        imgs = [np.asarray(smooth_image(rng, size).convert("L")) for _ in labels]
        arrays[f"{split}_images"] = np.stack(imgs)
        arrays[f"{split}_labels"] = labels[:, None]
    np.savez_compressed(path, **arrays)
    return arrays


@pytest.mark.slow
def test_a_medmnist_npz_keeps_its_official_split(tmp_path):
    arrays = medmnist(tmp_path / "pneumoniamnist.npz", {"train": [20, 8], "val": [4, 3], "test": [5, 3]})
    repo = repro(tmp_path, str(tmp_path / "pneumoniamnist.npz"), ["normal", "pneumonia"])
    man = counted(repo)
    assert len(man) == 43
    assert (man.split == man.path.str.split("/").str[1]).all()  # <class>/<split>/<split>_<i>.png
    for r in man.sample(5, random_state=0).itertuples():
        split, i = r.path.split("/")[1], int(r.path.rsplit("_", 1)[1].split(".")[0])
        decoded = np.asarray(Image.open(repo / "data/raw" / r.path))
        assert np.array_equal(decoded, arrays[f"{split}_images"][i])  # pixels as in the file
        assert r.label == ["normal", "pneumonia"][int(arrays[f"{split}_labels"][i, 0])]
    assert json.loads((repo / "metrics/counts.json").read_text())["splits"]["test"] == {
        "normal": 5,
        "pneumonia": 3,
    }


def test_npz_layouts_other_tools_save_are_read_as_medmnist(tmp_path):
    """Channels first (a torch tensor's N x 3 x H x W), labels saved as floats or booleans, and
    uint16 pixels (windowed, and reported as windowed) give the images MedMNIST's layout gives."""
    from rebalance.dataset import npz_source

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 1, 0])
    forms = {
        "medmnist": {"train_images": rgb, "train_labels": labels[:, None]},
        "channels_first": {"train_images": rgb.transpose(0, 3, 1, 2), "train_labels": labels[:, None]},
        "float_labels": {"train_images": rgb, "train_labels": labels.astype(np.float32)},
        "bool_labels": {"train_images": rgb, "train_labels": labels.astype(bool)},
    }
    pixels = {}
    for name, arrays in forms.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        found = npz_source.extract(tmp_path / f"{name}.npz", ["a", "b"], tmp_path / name, "minmax", 1)
        assert not found.windowed, name
        pixels[name] = {n: np.asarray(Image.open(tmp_path / name / n)).tolist() for n, _ in found.images}
    assert all(p == pixels["medmnist"] for p in pixels.values())
    np.savez(tmp_path / "deep.npz", train_images=rgb.astype(np.uint16) * 257, train_labels=labels)
    found = npz_source.extract(tmp_path / "deep.npz", ["a", "b"], tmp_path / "deep", "minmax", 1)
    assert found.windowed == {n for n, _ in found.images}


def test_npz_mistakes_are_one_line_errors(tmp_path):
    np.savez(
        tmp_path / "multi.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.zeros((4, 14))
    )
    np.savez(tmp_path / "range.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.arange(4))
    np.savez(tmp_path / "none.npz", images=np.zeros((4, 8, 8), np.uint8))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    np.savez(
        tmp_path / "rgba.npz", train_images=np.zeros((4, 8, 8, 4), np.uint8), train_labels=np.arange(4) % 2
    )
    np.savez(tmp_path / "half.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.full(4, 0.5))
    expected = {
        "rgba": "expected N x H x W, N x H x W x 3 or N x 3 x H x W",
        "half": "list one class per label value",
        "multi": "multi-label",
        "range": "list one class per label value",
        "none": "no train_images array",
        "junk": "cannot read the .npz",
    }
    for name, text in expected.items():
        (tmp_path / name).mkdir()
        work = workdir(tmp_path / name, tmp_path / f"{name}.npz", ["a", "b"])
        assert text in one_line_error(stage(work, "raw", check=False)), name


def test_an_official_duplicate_across_splits_is_left_out_of_test_and_reported(tmp_path):
    path = tmp_path / "dup.npz"
    arrays = medmnist(path, {"train": [6, 6], "val": [3, 3], "test": [3, 3]})
    arrays["test_images"][0] = arrays["train_images"][0]  # the same image in train and test
    np.savez(path, **arrays)
    work = workdir(tmp_path, path, ["a", "b"])
    stage(work, "raw")
    stage(work, "count")
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert list(counts["dropped"]) == ["a/test/test_000000.png"]
    assert "a/test/test_000000.png" not in set(counted(work).path)
    assert counts["splits"]["test"] == {"a": 2, "b": 3}


def dicom(
    path: Path, values: np.ndarray, window: tuple[float, float] | None, monochrome1: bool = False
) -> None:
    """A 12-bit CR image (stored 16-bit) with a rescale to HU and, given, its own window."""
    ds = dicomgen.dataset(values.astype(np.uint16), "MONOCHROME1" if monochrome1 else "MONOCHROME2")
    ds.Modality, ds.BitsStored, ds.HighBit = "CR", 12, 11
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    dicomgen.write(path, ds)


def test_dicom_files_are_windowed_to_8_bit_pngs(tmp_path):
    ramp = np.tile(np.linspace(0, 4000, 32), (32, 1))  # stored values; HU = value - 1024
    src = tmp_path / "src"
    for label in ("a", "b"):
        (src / label).mkdir(parents=True)
    dicom(src / "a" / "own_window.dcm", ramp, window=(0, 800))  # HU -400..400 shown
    dicom(src / "a" / "IM0001", ramp, window=None)  # no extension: found by its DICM preamble
    dicom(src / "a" / "inverted.dcm", ramp, window=None, monochrome1=True)
    (src / "a" / "fake.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    for i in range(3):
        smooth_image(np.random.default_rng(i)).save(src / "b" / f"{i}.png")
    work = workdir(tmp_path, src, ["a", "b"])
    stage(work, "raw")
    out = {p.name: np.asarray(Image.open(p)) for p in (work / "data/raw/a").iterdir()}
    assert set(out) == {"own_window.dcm.png", "IM0001.png", "inverted.dcm.png"}
    win = out["own_window.dcm.png"][0].astype(int)  # one row of the ramp
    hu = ramp[0] - 1024
    assert (win[hu <= -400] == 0).all() and (win[hu >= 400] == 255).all()  # the file's own window
    inside = (hu > -380) & (hu < 380)
    assert (np.diff(win[inside]) >= 0).all() and len(set(win[inside])) > 5  # grey levels follow
    plain = out["IM0001.png"][0].astype(int)
    assert plain[0] < 10 and plain[-1] > 245 and (np.diff(plain) >= 0).all()  # raw.window percentile
    assert (out["inverted.dcm.png"][0].astype(int) == 255 - plain).all()  # MONOCHROME1: inverted
    skipped = json.loads((work / "metrics/raw.json").read_text())["skipped"]
    assert [s["path"] for s in skipped] == ["a/fake.dcm"] and "DICOM" in skipped[0]["reason"]


@pytest.mark.parametrize("fit", ["stretch", "crop", "pad"])
def test_one_fit_policy_brings_every_image_to_the_square_size(tmp_path, fit):
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = 255  # a white centred square, black on both sides
    Image.fromarray(wide).save(tmp_path / "wide.png")
    out = images.load_array(tmp_path / "wide.png", 20, fit)
    assert out.shape == (20, 20, 3)
    white = (out[..., 0] > 127).mean()
    expected = {"stretch": 0.5, "crop": 1.0, "pad": 0.25}[fit]
    assert abs(white - expected) < 0.05
    if fit == "pad":  # the padding is above and below: the middle rows keep the half-white
        assert out[0].max() == 0 and out[10, 10, 0] == 255
    square = np.asarray(smooth_image(np.random.default_rng(0), 32))
    Image.fromarray(square).save(tmp_path / "square.png")
    assert np.array_equal(
        images.load_array(tmp_path / "square.png", 16, fit),
        images.load_array(tmp_path / "square.png", 16, "stretch"),
    )


def test_isic_metadata_as_downloaded_by_params_alone(tmp_path):
    """ISIC 2024's train-metadata.csv as it comes (isic_id without a suffix, target 0/1,
    patient_id) read through raw.csv, the ISIC 2024 SD+LoRA study's sampled benign set through
    count.max_per_class: no CSV of our own, no patient in two splits, the sample recorded."""
    rng = np.random.default_rng(5)
    root = tmp_path / "isic"
    rows = []
    for i in range(60):
        isic_id, target = f"ISIC_{1000000 + i * 37:07d}", int(i >= 48)
        photo(rng, root / "train-image/image" / f"{isic_id}.jpg", 40, 40, grey=False)
        rows.append({"isic_id": isic_id, "target": target, "patient_id": f"IP_{i // 3:04d}", "age": 40 + i})
    pd.DataFrame(rows).to_csv(root / "train-metadata.csv", index=False)
    columns = {"path": "isic_id", "label": "target", "path_format": "train-image/image/{}.jpg"}
    updates = {"raw": {"csv": columns}, "dataset": {"group_by": "patient_id"}}
    # 4 malignant patients: count.min_test_per_class 1 (the default 2 needs 5 whole patients)
    updates["count"] = {"max_per_class": {"benign": 24}, "target": {"strategy": "max"}}
    updates["count"]["min_test_per_class"] = 1
    work = workdir(tmp_path, root / "train-metadata.csv", ["benign", "malignant"], updates)
    stage(work, "raw")
    stage(work, "count")

    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert len(index) == 60 and index.path.iloc[0] == "benign/train-image/image/ISIC_1000000.jpg"
    labels = pd.read_csv(work / "data/raw/labels.csv", dtype=str)
    assert {"patient_id", "age"} <= set(labels.columns)
    man = counted(work)
    patient = dict(zip(index.path, index.group))
    assert man.groupby(man.path.map(patient)).split.nunique().max() == 1  # no patient in two splits
    kept = man.label.value_counts().to_dict()
    assert kept["malignant"] == 12 and 21 <= kept["benign"] <= 24  # whole patients of 3 images
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert counts["sampled_out"] == {"benign": 48 - kept["benign"]}
    assert f"Sampled: {48 - kept['benign']} real benign images left out" in plan.split_notes(counts)
    assert sum(counts["splits"][s]["benign"] for s in ("train", "val", "test")) == kept["benign"]

    params = yaml.safe_load((work / "params.yaml").read_text())
    params["raw"]["csv"]["path"] = "image_id"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    error = one_line_error(stage(work, "raw", check=False))
    assert "no `image_id` column (raw.csv.path; columns: isic_id, target" in error
    assert error.endswith("fix raw.csv.path")


def test_kaggle_split_folders_as_downloaded(tmp_path):
    """`Train/ Test/` as Kaggle's archives hold them (capitalised, no val, a `__MACOSX/` beside):
    read as the official split, test kept exactly, val drawn from train, the stray folder reported;
    a CSV's `valid` split value is read as val."""
    rng = np.random.default_rng(3)
    src = tmp_path / "skin"
    for folder, n in (("Train", 24), ("Test", 6)):
        for c in ("melanoma", "nevus"):
            for i in range(n):
                photo(rng, src / folder / c / f"{folder}_{c}_{i}.jpg", 48, 40, grey=False)
    (src / "__MACOSX" / "Train").mkdir(parents=True)
    work = workdir(tmp_path, src, ["melanoma", "nevus"])
    assert "skipped __MACOSX/: folder not a split (train, val, test)" in stage(work, "raw").stdout
    out = stage(work, "count").stdout
    assert "Drawn: the source has no val split" in out
    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert set(index.split) == {"train", "test"} and index.path.iloc[0].startswith("melanoma/test/")
    man = counted(work).set_index("path")
    official = dict(zip(index.path, index.split))
    assert all((man.split[n] == "test") == (s == "test") for n, s in official.items())  # test exact
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert counts["drawn_from_train"]["val"] == (man.split == "val").sum() > 0

    (src / "Valid").mkdir()
    (src / "Test").rename(src / "validation")
    error = one_line_error(stage(work, "raw", check=False))
    assert "holds both Valid/ and validation/, two val folders; merge them" in error

    rows = [
        {"path": f"{i}.png", "label": "ab"[i % 2], "split": ["Train", "valid", "TEST"][i % 3]}
        for i in range(18)
    ]
    for row in rows:
        photo(rng, tmp_path / "csv" / row["path"], 32, 32, grey=True)
    pd.DataFrame(rows).to_csv(tmp_path / "csv/list.csv", index=False)
    (tmp_path / "c").mkdir()
    work = workdir(tmp_path / "c", tmp_path / "csv/list.csv", ["a", "b"])
    stage(work, "raw")
    assert pd.read_csv(work / "data/raw/images.csv").split.value_counts().to_dict() == {
        "train": 6,
        "val": 6,
        "test": 6,
    }


def test_isic_2019_one_hot_and_ham10000_two_folders_by_params_alone(tmp_path):
    """ISIC 2019's ground truth (one column per class, 1.0 in the image's) through a list in
    raw.csv.label, rows with no class or two reported; HAM10000's metadata (dx, lesion_id) with
    its images in two folders through a list in raw.csv.path_format, a lesion never in two splits."""
    rng = np.random.default_rng(11)
    root, classes = tmp_path / "isic2019", ["MEL", "NV", "BCC"]
    rows = []
    for i in range(30):
        image = f"ISIC_{i:07d}"
        photo(rng, root / "ISIC_2019_Training_Input" / f"{image}.jpg", 40, 40, grey=False)
        rows.append({"image": image, "MEL": 0.0, "NV": 0.0, "BCC": 0.0, "UNK": 0.0} | {classes[i % 3]: 1.0})
    rows[0]["NV"], rows[1]["NV"] = 1.0, 0.0  # MEL and NV; nothing
    pd.DataFrame(rows).to_csv(root / "ISIC_2019_Training_GroundTruth.csv", index=False)
    columns = {"path": "image", "label": [*classes, "UNK"], "path_format": "ISIC_2019_Training_Input/{}.jpg"}
    work = workdir(tmp_path, root / "ISIC_2019_Training_GroundTruth.csv", classes, {"raw": {"csv": columns}})
    out = stage(work, "raw").stdout
    assert "ISIC_0000000.jpg: 2 of raw.csv.label's columns hold 1 (MEL, NV): one class per image" in out
    assert "ISIC_0000001.jpg: none of raw.csv.label's columns holds 1" in out
    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert len(index) == 28 and (index.path.str.split("/").str[0] == index.label).all()
    assert index.label.value_counts().to_dict() == {"MEL": 9, "BCC": 10, "NV": 9}

    root = tmp_path / "ham"
    rows = []
    for i in range(36):
        image = f"ISIC_{24306 + i:07d}"
        photo(rng, root / f"HAM10000_images_part_{1 + i % 2}" / f"{image}.jpg", 60, 45, grey=False)
        rows.append({"lesion_id": f"HAM_{i // 3:07d}", "image_id": image, "dx": ["nv", "mel"][i % 2]})
    pd.DataFrame(rows).to_csv(root / "HAM10000_metadata.csv", index=False)
    parts = ["HAM10000_images_part_1/{}.jpg", "HAM10000_images_part_2/{}.jpg"]
    columns = {"path": "image_id", "label": "dx", "path_format": parts}
    (tmp_path / "h").mkdir()
    updates = {"raw": {"csv": columns}, "dataset": {"group_by": "lesion_id"}}
    work = workdir(tmp_path / "h", root / "HAM10000_metadata.csv", ["nv", "mel"], updates)
    stage(work, "raw")
    stage(work, "count")
    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert len(index) == 36 and index.path.str.contains("part_2/").sum() == 18
    man = counted(work)
    lesion = dict(zip(index.path, index.group))
    assert man.groupby(man.path.map(lesion)).split.nunique().max() == 1

    params = yaml.safe_load((work / "params.yaml").read_text())
    params["raw"]["csv"]["label"] = ["dx"]
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    error = one_line_error(stage(work, "raw", check=False))
    assert "`raw.csv.label` list should have at least 2 items" in error


def test_flips_of_photographs_can_stay_jpeg(tmp_path):
    """flip.format: source writes a JPEG's flip as a JPEG (several times smaller than a PNG of a
    photograph), fingerprinted as the file decodes, so fuse's leak check sees what is published;
    a PNG's flip stays PNG."""
    from rebalance.dataset import duplicates

    rng = np.random.default_rng(4)
    src = tmp_path / "photos"
    for c in ("a", "b"):
        for i in range(8):
            photo(rng, src / c / f"{i}.{'png' if i == 0 else 'jpg'}", 160, 120, grey=False)
    updates = {
        "flip": {"format": "source", "jpeg_quality": 90},
        "count": {"target": {"strategy": "fixed", "n": 1}},
    }
    work = workdir(tmp_path, src, ["a", "b"], updates)
    for name in ("raw", "count", "judge", "synthesize", "flip", "fuse"):
        stage(work, name)
    man = pd.read_csv(work / "data/fused/manifest.csv", dtype=str, keep_default_na=False)
    flips = man[man.origin == "flip"]
    assert len(flips) > 4 and set(flips.path.str[-8:]) <= {"flip.jpg", "flip.png"}
    prints = duplicates.read_table(work / "data/flipped/fingerprints.csv")
    for row in flips.itertuples():
        file = work / "data/fused" / row.path
        assert row.path.endswith("_flip.png") == row.source.endswith(".png")
        assert images.sha256_bytes(file.read_bytes()) == row.sha256
        assert prints[row.path][1] == duplicates.of_file(file)  # the fingerprint of the published file
        mirrored = images.open_rgb(work / "data/raw" / row.source).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        diff = np.abs(np.asarray(images.open_rgb(file), int) - np.asarray(mirrored, int)).mean()
        assert diff < (0.01 if row.path.endswith(".png") else 3)
        if row.path.endswith(".jpg"):
            assert file.stat().st_size < len(images.encode_png(mirrored)) / 2


def test_generated_images_default_to_the_median_side_at_most_512(tmp_path):
    """Mixed sizes: images made from noise get the median side of the train images (headers
    only), capped for multi-megapixel photographs; an explicit size is taken as given."""
    from rebalance.synth.base import Context, output_size

    rng = np.random.default_rng(6)
    sides = {"small": [40, 60, 90], "large": [2400, 3000, 4000]}
    for name, values in sides.items():
        for i, side in enumerate(values):
            photo(rng, tmp_path / name / f"{i}.jpg", side, side * 3 // 4, grey=False)
    for name, expected in (("small", 60), ("large", 512)):
        rows = pd.DataFrame({"path": [f"{name}/{i}.jpg" for i in range(3)]})
        params = folder_params(["small", "large"])  # dataset.image_size null
        assert output_size(Context(params, rows, tmp_path, tmp_path), None) == expected
        assert output_size(Context(params, rows, tmp_path, tmp_path), 1024) == 1024

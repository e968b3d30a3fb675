"""examples/params/: every overlay merged onto params.yaml validates, and each dataset's file
reads a small set of files shaped like that dataset's archive through stages raw and count,
finding exactly its classes. The layouts are made here (test_init.py makes the same ones)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, deep_update
from imagegen import smooth_image, stage, workdir
from test_list_sources import acne04
from test_real_sources import dicom, medmnist, photo

from rebalance import config

EXAMPLES = REPO / "examples" / "params"


def overlay(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


def on_params(*names: str) -> dict:
    """This repository's params.yaml with the named overlays merged in order (conftest's merge:
    mappings merge, methods/variants/generators replaced whole; not rebalance/init.py's)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name in names:
        params = deep_update(params, overlay(name))
    return params


# ---- small files shaped like each dataset's archive ------------------------------------------


def make_acne04(root: Path) -> Path:
    """ACNE04's Classification/ folder: JPEGImages/ and fold 0's lists (test_list_sources.acne04)."""
    acne04(root / "ACNE04" / "Classification")
    return root / "ACNE04" / "Classification" / "NNEW_trainval_0.txt"


def make_isic2024(root: Path) -> Path:
    """train-metadata.csv (isic_id without a suffix, target 0/1, patient_id) and train-image/image/:
    16 benign crops of 8 patients, 12 malignant of 6."""
    rng, rows = np.random.default_rng(24), []
    for i in range(28):
        isic_id = f"ISIC_{1000000 + i * 37:07d}"
        photo(rng, root / "isic2024" / "train-image" / "image" / f"{isic_id}.jpg", 32, 32, grey=False)
        rows.append(
            {"isic_id": isic_id, "target": int(i >= 16), "patient_id": f"IP_{i // 2:04d}", "age_approx": 40}
        )
    pd.DataFrame(rows).to_csv(root / "isic2024" / "train-metadata.csv", index=False)
    return root / "isic2024" / "train-metadata.csv"


ISIC2019 = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def make_isic2019(root: Path) -> Path:
    """ISIC_2019_Training_GroundTruth.csv (one 0/1 column per class, UNK empty) and its images:
    5 of each class, and a row with no 1 (a reported skip)."""
    rng, rows = np.random.default_rng(19), []
    folder = root / "isic2019"
    for i in range(len(ISIC2019) * 5 + 1):
        image = f"ISIC_{i:07d}"
        photo(rng, folder / "ISIC_2019_Training_Input" / f"{image}.jpg", 28, 28, grey=False)
        hot = {ISIC2019[i % 8]: 1.0} if i < len(ISIC2019) * 5 else {}
        rows.append({"image": image} | {c: 0.0 for c in [*ISIC2019, "UNK"]} | hot)
    pd.DataFrame(rows).to_csv(folder / "ISIC_2019_Training_GroundTruth.csv", index=False)
    return folder / "ISIC_2019_Training_GroundTruth.csv"


HAM = ["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"]


def make_ham10000(root: Path) -> Path:
    """HAM10000_metadata.csv (lesion_id, image_id, dx) with the images in two folders: 5 lesions
    per diagnosis, every other lesion photographed twice."""
    rng, rows, n = np.random.default_rng(10), [], 0
    folder = root / "ham10000"
    for c, dx in enumerate(HAM):
        for lesion in range(5):
            for _ in range(1 + lesion % 2):
                image = f"ISIC_{24306 + n:07d}"
                photo(rng, folder / f"HAM10000_images_part_{1 + n % 2}" / f"{image}.jpg", 32, 24, grey=False)
                rows.append(
                    {"lesion_id": f"HAM_{c * 10 + lesion:07d}", "image_id": image, "dx": dx, "age": 50}
                )
                n += 1
    pd.DataFrame(rows).to_csv(folder / "HAM10000_metadata.csv", index=False)
    return folder / "HAM10000_metadata.csv"


def make_rsna(root: Path) -> Path:
    """stage_2_train_labels.csv (one row per box: patientId, x, y, width, height, Target) and a
    DICOM per patient: 10 normal, 6 pneumonia (every other one with two boxes)."""
    rng, rows = np.random.default_rng(8), []
    folder = root / "rsna"
    for i in range(16):
        pid, target = f"{i:04x}-rsna", int(i >= 10)
        dicom(folder / "stage_2_train_images" / f"{pid}.dcm", rng.integers(0, 4096, (32, 32)), None)
        boxes = [(10 + b, 12, 8, 9) for b in range(1 + i % 2)] if target else [("", "", "", "")]
        rows += [
            {"patientId": pid, "x": x, "y": y, "width": w, "height": h, "Target": target}
            for x, y, w, h in boxes
        ]
    pd.DataFrame(rows).to_csv(folder / "stage_2_train_labels.csv", index=False)
    return folder / "stage_2_train_labels.csv"


def make_chestxray14(root: Path) -> Path:
    """Data_Entry_2017.csv (Image Index, Finding Labels, Patient ID) with images in two folders:
    6 patients of no finding, 6 of pneumonia (half of it `Effusion|Pneumonia`), two images each,
    and 4 images of another finding (skipped)."""
    rng, rows = np.random.default_rng(14), []
    folder = root / "nih"
    for i in range(28):
        patient = i // 2
        finding = (
            "No Finding"
            if patient < 6
            else ("Pneumonia", "Effusion|Pneumonia")[i % 2]
            if patient < 12
            else "Infiltration"
        )
        name = f"{i:08d}_000.png"
        path = folder / f"images_00{1 + i % 2}" / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        smooth_image(rng, 32).convert("L").save(path)
        rows.append({"Image Index": name, "Finding Labels": finding, "Follow-up #": 0, "Patient ID": patient})
    pd.DataFrame(rows).to_csv(folder / "Data_Entry_2017.csv", index=False)
    return folder / "Data_Entry_2017.csv"


def make_chexpert(root: Path) -> Path:
    """CheXpert-v1.0-small/train.csv, paths from the folder above, findings 1.0 / blank / -1.0:
    6 patients with no finding and 6 with pneumonia, two studies each, and an uncertain row."""
    rng, rows = np.random.default_rng(9), []
    for p in range(13):
        for study in (1, 2) if p < 12 else (1,):
            rel = f"CheXpert-v1.0-small/train/patient{p:05d}/study{study}/view1_frontal.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            smooth_image(rng, 32).convert("L").save(root / rel)
            sick = "1.0" if 6 <= p < 12 else ("-1.0" if p == 12 else "")
            rows.append(
                {
                    "Path": rel,
                    "Sex": "Female",
                    "Age": 60,
                    "No Finding": "1.0" if p < 6 else "",
                    "Pneumonia": sick,
                }
            )
    pd.DataFrame(rows).to_csv(root / "CheXpert-v1.0-small" / "train.csv", index=False)
    return root / "CheXpert-v1.0-small" / "train.csv"


def make_kermany(root: Path) -> Path:
    """chest_xray/{train,val,test}/{NORMAL,PNEUMONIA} as the archive holds them (a child's images
    named person<k>_... or IM-<k>-..., each child in one split; 2 val images per class) and the
    zip's __MACOSX/ beside them."""
    rng = np.random.default_rng(33)
    folder = root / "chest_xray"
    children = {"train": range(0, 6), "val": range(6, 7), "test": range(7, 10)}
    for split, ks in children.items():
        for k in ks:
            for n in range(2):
                for c, name in (
                    ("NORMAL", f"IM-{k:04d}-{n + 1:04d}.jpeg"),
                    ("PNEUMONIA", f"person{k}_bacteria_{n}.jpeg"),
                ):
                    path = folder / split / c / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    smooth_image(rng, 32).convert("L").save(path, quality=92)
    (folder / "__MACOSX" / "train").mkdir(parents=True)
    return folder


def make_pneumoniamnist(root: Path) -> Path:
    """A PneumoniaMNIST-shaped .npz (test_real_sources.medmnist), its official split kept."""
    root.mkdir(parents=True, exist_ok=True)
    medmnist(root / "pneumoniamnist.npz", {"train": [12, 8], "val": [3, 3], "test": [4, 3]})
    return root / "pneumoniamnist.npz"


def make_dicom(root: Path) -> Path:
    """Class folders of 12-bit DICOMs (test_real_sources.dicom), one named without an extension."""
    rng = np.random.default_rng(12)
    for c in ("normal", "abnormal"):
        for i in range(6):
            name = "IM0007" if (c, i) == ("normal", 0) else f"{c}_{i}.dcm"
            dicom(root / "dicom" / c / name, rng.integers(0, 4096, (32, 32)), (0, 800) if i % 2 else None)
    return root / "dicom"


LAYOUTS = {
    "acne04": make_acne04, "isic2024": make_isic2024, "isic2019": make_isic2019, "ham10000": make_ham10000,
    "rsna": make_rsna, "chestxray14": make_chestxray14, "chexpert": make_chexpert, "kermany": make_kermany,
    "pneumoniamnist": make_pneumoniamnist, "dicom": make_dicom,
}  # fmt: skip


# ---- the tests -------------------------------------------------------------------------------


def test_there_is_one_file_per_layout_and_the_gpu_profile():
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == sorted([*LAYOUTS, "gpu"])


@pytest.mark.parametrize("name", sorted([*LAYOUTS, "gpu"]))
def test_each_file_merged_onto_params_yaml_validates(name):
    params = config.validate(on_params(name), f"examples/params/{name}.yaml")
    if name != "gpu":  # no lesion edits without lesion-count grades
        assert (params.dataset.lesion_bins is None) == ("lesion_edit" not in params.synthesize.methods)
        assert params.dataset.classes == overlay(name)["dataset"]["classes"]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_gpu_profile_merges_after_each_dataset(name):
    params = config.validate(on_params(name, "gpu"), f"examples/params/{name}.yaml + gpu.yaml")
    assert params.train.image_size == 224 and params.compute.device == "cuda"
    assert params.dataset.classes == overlay(name)["dataset"]["classes"]


def test_the_gpu_profile_on_the_demo():
    params = config.validate(on_params("gpu"), "params.yaml + examples/params/gpu.yaml")
    assert params.raw.source == "demo" and params.train.backbone == "resnet50"
    assert params.generators.diffusion.resolution == 64 and params.train.seeds == [0, 1, 2, 3, 4]
    assert params.synthesize.diffusion.mode == "full" and params.generators.gan is None


@pytest.mark.parametrize("name", sorted([*LAYOUTS, "gpu"]))
def test_each_file_says_what_it_is_and_how_to_use_it(name):
    text = (EXAMPLES / f"{name}.yaml").read_text()
    lines = text.splitlines()
    head = "\n".join(lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    assert "Use:" in head
    assert f"--merge examples/params/{name}.yaml" in head and "rebalance init" in head
    if name != "gpu":
        assert "Layout expected" in head and "/data/" in head
        assert overlay(name)["raw"]["source"].startswith("/data/")  # a placeholder the header names


def test_the_examples_readme_lists_every_file():
    text = (REPO / "examples" / "README.md").read_text()
    for path in EXAMPLES.glob("*.yaml"):
        assert f"`params/{path.name}`" in text


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_example_reads_its_layout_through_raw_and_count(tmp_path, name):
    """The dataset's file, its placeholder source pointed at the small files, through stages raw
    and count (test_real_sources' work folder): the counted classes are the file's classes."""
    source = LAYOUTS[name](tmp_path / "source")
    updates = deep_update(overlay(name), {"raw": {"source": str(source)}})
    classes = updates["dataset"]["classes"]
    work = workdir(tmp_path, source, classes, updates)
    stage(work, "raw")
    stage(work, "count")
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert list(counts["raw"]) == classes and all(counts["raw"][c] > 0 for c in classes), counts["raw"]
    counted = pd.read_csv(work / "data/counted/manifest.csv", dtype=str, keep_default_na=False)
    assert set(counted.label) == set(classes)

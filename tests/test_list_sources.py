"""Image tables as datasets publish them, read by params alone: ACNE04's official folds
(`NNEW_trainval_0.txt`, `NNEW_test_0.txt`: `levle0_1.jpg 0 1`, blank separated, no header),
RSNA Pneumonia's one row per box, ChestX-ray14's multi-label `Finding Labels`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from imagegen import one_line_error, smooth_image, stage, workdir
from test_real_sources import dicom

from rebalance.dataset import csv_read, plan

CLASSES = ["level0", "level1", "level2", "level3"]
COLUMNS = {
    "header": ["path", "label", "lesions"],
    "path_format": "JPEGImages/{}",
    "split_files": {"test": "NNEW_test_0.txt"},
}


def acne04(root: Path, per_grade: int = 12) -> dict[str, str]:
    """ACNE04's Classification/ folder: JPEGImages/levle<g>_<i>.jpg (the dataset's own spelling)
    and fold 0's two lists, every fourth image of a grade in test. Returns image -> split."""
    rng = np.random.default_rng(4)
    split, lines = {}, {"train": [], "test": []}
    for grade in range(4):
        for i in range(1, per_grade + 1):
            name = f"levle{grade}_{i}.jpg"
            (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
            smooth_image(rng, 48).save(root / "JPEGImages" / name, quality=90)
            split[name] = "test" if i % 4 == 0 else "train"
            lines[split[name]].append(f"{name} {grade} {grade * 10 + i}")
    (root / "NNEW_trainval_0.txt").write_text("\n".join(lines["train"]) + "\n")
    (root / "NNEW_test_0.txt").write_text("\n".join(lines["test"]) + "\n")
    return split


def test_acne04_official_fold_by_params_alone(tmp_path):
    """Fold 0's test list kept exactly, val drawn from its trainval list, the lesion counts kept as
    metadata; editing the test list re-runs raw (scan's listing changes)."""
    root = tmp_path / "ACNE04/Classification"
    official = acne04(root)
    work = workdir(tmp_path, root / "NNEW_trainval_0.txt", CLASSES, {"raw": {"csv": COLUMNS}})
    stage(work, "scan")
    stage(work, "raw")
    out = stage(work, "count").stdout
    assert "Drawn: the source has no val split" in out

    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert len(index) == 48 and index.path.iloc[0] == "level0/JPEGImages/levle0_1.jpg"
    assert dict(zip(index.source.str.removeprefix("JPEGImages/"), index.split)) == official
    labels = pd.read_csv(work / "data/raw/labels.csv", dtype=str)
    assert labels.set_index("path").lesions["level2/JPEGImages/levle2_3.jpg"] == "23"
    man = pd.read_csv(work / "data/counted/manifest.csv", dtype=str).set_index("path")
    tested = {p.rsplit("/", 1)[1] for p in man.index[man.split == "test"]}
    assert tested == {n for n, s in official.items() if s == "test"}  # the official test, exactly
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert counts["drawn_from_train"]["val"] == (man.split == "val").sum() > 0

    listing = json.loads((work / "data/source.json").read_text())
    assert listing["split_files"]["test"][0] == "NNEW_test_0.txt"
    with open(root / "NNEW_test_0.txt", "a") as f:
        f.write("levle3_1.jpg 3 31\n")  # also in the train list: one image, two splits
    assert "changed" in stage(work, "scan").stdout
    error = one_line_error(stage(work, "raw", check=False))
    assert "JPEGImages/levle3_1.jpg has rows that differ in split; keep one split per image" in error


def test_acne04_lesion_counts_measure_the_detector(tmp_path):
    """With Hayashi's bins (dataset.lesion_bins) the lists' lesion counts are the true counts stage
    detect measures the lesion detector against; a table without a `lesions` column gets a note."""
    root = tmp_path / "Classification"
    acne04(root, per_grade=8)
    bins = {"level0": [0, 5], "level1": [6, 20], "level2": [21, 50], "level3": [51, None]}
    updates = {"raw": {"csv": COLUMNS}, "dataset": {"lesion_bins": bins}}
    work = workdir(tmp_path, root / "NNEW_trainval_0.txt", CLASSES, updates)
    for name in ("raw", "count", "detect"):
        stage(work, name)
    measured = json.loads((work / "metrics/detector.json").read_text())
    assert measured["measured"] and {"count_mae", "grade_agreement"} <= set(measured["train"])

    params = yaml.safe_load((work / "params.yaml").read_text())
    params["raw"]["csv"]["header"] = ["path", "label", "count"]
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    for name in ("raw", "count"):
        stage(work, name)
    assert "has no `lesions` column of true counts" in stage(work, "detect").stdout
    assert not json.loads((work / "metrics/detector.json").read_text())["measured"]


def test_list_mistakes_are_one_line_errors(tmp_path):
    """A list read without raw.csv.header, a missing test list, a row with an extra field and a
    split the source itself holds: each a one-line error naming the file or key and the fix."""
    root = tmp_path / "Classification"
    acne04(root, per_grade=4)

    def error(columns: dict) -> str:
        work = workdir(tmp_path, root / "NNEW_trainval_0.txt", CLASSES, {"raw": {"csv": columns}})
        params = yaml.safe_load((work / "params.yaml").read_text())
        params["raw"]["csv"] = {"path": "path", "label": "label", "path_format": "{}"} | columns
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        return one_line_error(stage(work, "raw", check=False))

    assert "name its columns in raw.csv.header" in error({k: v for k, v in COLUMNS.items() if k != "header"})
    missing = error(COLUMNS | {"split_files": {"test": "NNEW_test_9.txt"}})
    assert "NNEW_test_9.txt: test list not found (raw.csv.split_files.test)" in missing
    train = error(COLUMNS | {"split_files": {"train": "NNEW_test_0.txt"}})  # the source lists train
    assert "`raw.csv.split_files.train` input should be 'val' or 'test'" in train
    assert "`raw.csv.header`" in error(COLUMNS | {"header": []})

    (root / "NNEW_test_0.txt").write_text("levle0_4.jpg 0 4 extra\n")
    assert "rows have more fields than raw.csv.header names (path, label, lesions)" in error(COLUMNS)
    (root / "NNEW_test_0.txt").write_text("path,label,split\nlevle0_4.jpg,0,test\n")
    no_header = COLUMNS | {"header": None}
    assert "has a `split` column and raw.csv.split_files gives the split; use one" in error(no_header)


def test_a_csv_is_parsed_once_whatever_the_group_column(tmp_path, monkeypatch):
    """Stage raw asks for the source's table with and without dataset.group_by: one parse."""
    (tmp_path / "a.csv").write_text("path,label,patient\nx.png,a,p1\ny.png,b,p2\n")
    calls = []
    parse = csv_read._parse
    monkeypatch.setattr(csv_read, "_parse", lambda *a: calls.append(a) or parse(*a))
    for group_by in (None, "patient", None, "patient"):
        assert list(csv_read.read(tmp_path / "a.csv", group_by).index) == ["x.png", "y.png"]
    assert len(calls) == 1
    one_line = "dataset.group_by column `lesion_id` not found (columns: path, label, patient)"
    try:
        csv_read.read(tmp_path / "a.csv", "lesion_id")
    except Exception as err:  # noqa: BLE001 - the message is what is checked
        assert one_line in str(err)
    else:
        raise AssertionError("an unknown group_by column was accepted")


def test_rsna_pneumonia_box_table_by_params_alone(tmp_path):
    """RSNA Pneumonia's stage_2_train_labels.csv as downloaded: one row per box (several rows of
    one patientId, the same Target), DICOMs named by patientId. Each image is read once with its
    first row and the repeats are reported; rows of one image that disagree on the label, or on
    dataset.group_by, are a one-line error naming the image."""
    rng = np.random.default_rng(8)
    root = tmp_path / "rsna"
    (root / "stage_2_train_images").mkdir(parents=True)
    rows = []
    for i in range(24):
        pid, target = f"{i:04x}-rsna", int(i % 3 == 0)
        dicom(root / "stage_2_train_images" / f"{pid}.dcm", rng.integers(0, 4096, (40, 40)), None)
        boxes = [(10 + b, 12, 8, 9) for b in range(1 + i % 2)] if target else [("", "", "", "")]
        rows += [
            {"patientId": pid, "x": x, "y": y, "width": w, "height": h, "Target": target}
            for x, y, w, h in boxes
        ]
    pd.DataFrame(rows).to_csv(root / "stage_2_train_labels.csv", index=False)
    columns = {"path": "patientId", "label": "Target", "path_format": "stage_2_train_images/{}.dcm"}
    updates = {"raw": {"csv": columns}}
    work = workdir(tmp_path, root / "stage_2_train_labels.csv", ["normal", "pneumonia"], updates)
    out = stage(work, "raw").stdout
    assert "metadata: 4 images have several rows (same label, split, group): first row kept" in out
    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert len(index) == 24 and index.label.value_counts().to_dict() == {"normal": 16, "pneumonia": 8}
    labels = pd.read_csv(work / "data/raw/labels.csv", dtype=str, keep_default_na=False).set_index("path")
    assert labels.x["pneumonia/stage_2_train_images/0003-rsna.dcm.png"] == "10"  # its first box
    assert json.loads((work / "metrics/raw.json").read_text())["metadata_repeated"] == 4

    assert rows[4]["patientId"] == "0003-rsna" == rows[3]["patientId"]
    rows[4]["Target"] = 0  # 0003-rsna's second box says normal
    pd.DataFrame(rows).to_csv(root / "stage_2_train_labels.csv", index=False)
    error = one_line_error(stage(work, "raw", check=False))
    assert "images/0003-rsna.dcm has rows that differ in label; keep one label per image" in error
    rows[4]["Target"] = 1
    pd.DataFrame([r | {"site": f"s{k % 2}"} for k, r in enumerate(rows)]).to_csv(
        root / "stage_2_train_labels.csv", index=False
    )
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["dataset"]["group_by"] = "site"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    error = one_line_error(stage(work, "raw", check=False))
    assert "has rows that differ in site (dataset.group_by); keep one site per image" in error


def test_chestxray14_multi_label_findings_by_params_alone(tmp_path):
    """ChestX-ray14's Data_Entry_2017.csv (`Finding Labels` such as `Effusion|Pneumonia`, `Patient
    ID`, images in images_001/images/ and images_002/images/): pneumonia vs no finding through
    raw.csv.label_separator; a row with neither class or with both is a reported skip; a patient
    stays in one split."""
    rng = np.random.default_rng(14)
    root = tmp_path / "nih"
    findings = ["No Finding", "Pneumonia", "Effusion|Pneumonia", "Infiltration", "Pneumonia|Effusion"]
    rows = []
    for i in range(40):
        name = f"{i:08d}_000.png"
        path = root / f"images_00{1 + i // 20}/images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        smooth_image(rng, 40).convert("L").save(path)
        rows.append({"Image Index": name, "Finding Labels": findings[i % 5], "Patient ID": i // 4})
    rows[0]["Finding Labels"] = "No Finding|Pneumonia"  # (not in the real table): two classes
    pd.DataFrame(rows).to_csv(root / "Data_Entry_2017.csv", index=False)
    parts = ["images_001/images/{}", "images_002/images/{}"]
    columns = {"path": "Image Index", "label": "Finding Labels", "label_separator": "|", "path_format": parts}
    updates = {"raw": {"csv": columns}, "dataset": {"group_by": "Patient ID"}}
    work = workdir(tmp_path, root / "Data_Entry_2017.csv", ["No Finding", "Pneumonia"], updates)
    out = stage(work, "raw").stdout
    assert "00000000_000.png: 2 of its labels are classes (No Finding, Pneumonia): one class per image" in out
    assert "00000003_000.png: label 'Infiltration' not in dataset.classes" in out
    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert index.label.value_counts().to_dict() == {"Pneumonia": 24, "No Finding": 7}
    assert "Pneumonia/images_002/images/00000022_000.png" in set(index.path)  # Effusion|Pneumonia
    stage(work, "count")
    man = pd.read_csv(work / "data/counted/manifest.csv", dtype=str)
    patient = dict(zip(index.path, index.group))
    assert man.groupby(man.path.map(patient)).split.nunique().max() == 1


def test_a_file_raw_cannot_read_is_a_one_line_error(tmp_path):
    """ISIC 2024's train-image.hdf5 (or a zip) given as raw.source: scan and raw say it is a file
    they cannot read and what to give instead (was: "source folder not found")."""
    (tmp_path / "train-image.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    work = workdir(tmp_path, tmp_path / "train-image.hdf5", ["benign", "malignant"])
    assert "train-image.hdf5 is not a folder (stage raw says what to fix)" in stage(work, "scan").stdout
    error = one_line_error(stage(work, "raw", check=False))
    assert "train-image.hdf5: a file raw.source cannot read; give a folder of class folders" in error
    assert "ISIC 2024's HDF5: its image folder with train-metadata.csv" in error


def test_patients_read_from_file_names_stay_in_one_split(tmp_path):
    """Kermany's chest_xray names a pneumonia image `person<k>_bacteria_<n>.jpeg` (several per
    child): dataset.group_pattern reads the patient from the path, so no child is in two splits
    (without it, children straddle train and test); a child in two official split folders is a
    one-line error; the pattern and dataset.group_by together are refused."""
    rng = np.random.default_rng(21)
    src = tmp_path / "chest_xray"
    for c in ("PNEUMONIA", "NORMAL"):
        (src / c).mkdir(parents=True)
    for k in range(12):
        for n in range(3):
            kind = "bacteria" if k % 2 else "virus"
            smooth_image(rng, 40).convert("L").save(src / "PNEUMONIA" / f"person{k}_{kind}_{n}.jpeg")
            smooth_image(rng, 40).convert("L").save(src / "NORMAL" / f"IM-{k:04d}-{n:04d}.jpeg")

    def children(work: Path) -> pd.Series:
        stage(work, "count")
        man = pd.read_csv(work / "data/counted/manifest.csv", dtype=str)
        return man.groupby(man.path.str.extract(r"(person\d+|IM-\d+)")[0]).split.nunique()

    work = workdir(tmp_path, src, ["NORMAL", "PNEUMONIA"])
    stage(work, "raw")
    assert children(work).max() > 1  # the hash split alone puts a child's images in two splits

    pattern = {"dataset": {"group_pattern": r"person\d+|IM-\d+"}}
    (tmp_path / "g").mkdir()
    work = workdir(tmp_path / "g", src, ["NORMAL", "PNEUMONIA"], pattern)
    out = stage(work, "raw").stdout
    assert "groups: 24 from dataset.group_pattern, 72 of 72 images matched" in out
    assert children(work).max() == 1
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert counts["groups"] == {"groups": 24, "images": 72}
    assert "Groups: 24 (patients, lesions, ...) of 72 images, each in one split." in plan.split_notes(counts)

    both = {"dataset": {"group_pattern": r"person\d+", "group_by": "patient", "metadata": "m.csv"}}
    (tmp_path / "b").mkdir()
    error = one_line_error(
        stage(workdir(tmp_path / "b", src, ["NORMAL", "PNEUMONIA"], both), "raw", check=False)
    )
    assert "`dataset.group_pattern` and dataset.group_by are both set" in error

    split = tmp_path / "split"
    for name in ("person3_virus_0.jpeg", "person3_virus_1.jpeg", "person4_virus_0.jpeg"):
        target = split / ("test" if name == "person3_virus_1.jpeg" else "train") / "PNEUMONIA" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        smooth_image(rng, 40).save(target)
    for s, n in (("train", 0), ("train", 1), ("test", 2)):
        (split / s / "NORMAL").mkdir(parents=True, exist_ok=True)
        smooth_image(rng, 40).save(split / s / "NORMAL" / f"IM-000{n}-0001.jpeg")
    (tmp_path / "s").mkdir()
    work = workdir(
        tmp_path / "s", split, ["NORMAL", "PNEUMONIA"], {"dataset": {"group_pattern": r"person\d+"}}
    )
    stage(work, "raw")
    error = one_line_error(stage(work, "count", check=False))
    assert "'person3' in two official splits (a leak)" in error


def test_a_tiny_official_val_can_be_redrawn_from_train(tmp_path):
    """Kermany's chest_xray ships train/ val/ test/ with 8 val images per class: count.official_val:
    redraw merges them into train and draws val as for a source without one; test stays exact."""
    rng = np.random.default_rng(33)
    src = tmp_path / "chest_xray"
    for split, n in (("train", 30), ("val", 2), ("test", 8)):
        for c in ("NORMAL", "PNEUMONIA"):
            (src / split / c).mkdir(parents=True)
            for i in range(n):
                smooth_image(rng, 32).convert("L").save(src / split / c / f"{split}_{c}_{i}.jpeg")
    work = workdir(tmp_path, src, ["NORMAL", "PNEUMONIA"], {"count": {"official_val": "redraw"}})
    stage(work, "raw")
    out = stage(work, "count").stdout
    assert "Drawn: the source's 4 val images merged into train (count.official_val)" in out
    man = pd.read_csv(work / "data/counted/manifest.csv", dtype=str)
    assert set(man.path[man.split == "test"].str.split("/").str[1]) == {"test"}  # <class>/<split>/<file>
    assert (man.split == "test").sum() == 16 and (man.split == "val").sum() > 4
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert counts["val_merged"] == 4 and counts["drawn_from_train"]["val"] == (man.split == "val").sum()


def test_chexpert_paths_written_from_the_csv_folders_parent(tmp_path):
    """CheXpert-v1.0-small/train.csv names `CheXpert-v1.0-small/train/patient00001/study1/...`
    (from the folder above the CSV), labels as 1.0 / 0.0 / -1.0 (uncertain) / blank per finding:
    read by params alone, the patient from the path, uncertain rows reported skips."""
    rng = np.random.default_rng(9)
    root = tmp_path / "CheXpert-v1.0-small"
    rows = []
    for p in range(10):
        for study in (1, 2):
            rel = f"CheXpert-v1.0-small/train/patient{p:05d}/study{study}/view1_frontal.jpg"
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            smooth_image(rng, 40).convert("L").save(tmp_path / rel)
            sick = (p + study) % 3 == 0
            rows.append({"Path": rel, "Sex": "Female", "No Finding": "" if sick else "1.0",
                         "Pneumonia": "1.0" if sick else ""})  # fmt: skip
    rows[0]["No Finding"], rows[0]["Pneumonia"] = "", "-1.0"  # uncertain: neither holds 1
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    columns = {"path": "Path", "label": ["No Finding", "Pneumonia"]}  # as README shows it
    updates = {"raw": {"csv": columns}, "dataset": {"group_pattern": r"patient\d+"}}
    work = workdir(tmp_path, root / "train.csv", ["No Finding", "Pneumonia"], updates)
    out = stage(work, "raw").stdout
    assert "train/patient00000/study1/view1_frontal.jpg: none of raw.csv.label's columns holds 1" in out
    index = pd.read_csv(work / "data/raw/images.csv", dtype=str)
    assert len(index) == 19 and set(index.source.str[:6]) == {"train/"}
    stage(work, "count")
    man = pd.read_csv(work / "data/counted/manifest.csv", dtype=str)
    assert man.groupby(man.path.str.extract(r"(patient\d+)")[0]).split.nunique().max() == 1

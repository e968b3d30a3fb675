"""The release's Croissant metadata (rebalance/registry/croissant.py), checked by mlcroissant: it
validates, the records it loads are the manifest's, the checksums are the files', and a broken
description or a changed file is refused. Tiny releases built here, in both formats; no network."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import mlcroissant as mlc
import pandas as pd
import pytest
from PIL import Image

from rebalance.core import manifest
from rebalance.dataset import shards
from rebalance.registry import croissant
from rebalance.registry.croissant import RAI

CLASSES = ["level0", "level1", "level2"]
# (path, origin, source, root, seed, cluster): real images in every split (one with an upper-case
# extension); in train a flip, two synthesis methods and a flip of a synthetic image
IMAGES = [
    ("train/level0/level0_0001.jpg", "real", "level0/level0_0001.jpg", "level0/level0_0001.jpg", "", ""),
    ("train/level0/level0_0002.jpg", "real", "level0/level0_0002.jpg", "level0/level0_0002.jpg", "", ""),
    ("train/level0/level0_0001_flip.png", "flip", "level0/level0_0001.jpg", "level0/level0_0001.jpg", "", ""),
    ("train/level1/level1_0003.jpg", "real", "level1/level1_0003.jpg", "level1/level1_0003.jpg", "", ""),
    ("train/level2/level2_0004.jpg", "real", "level2/level2_0004.jpg", "level2/level2_0004.jpg", "", ""),
    ("train/level1/diffusion_level1_00000.png", "diffusion", "level1/level1_0003.jpg",
     "level1/level1_0003.jpg", "1022956114", "2"),
    ("train/level2/lesion_edit_level2_00000.png", "lesion_edit", "level0/level0_0002.jpg",
     "level0/level0_0002.jpg", "3313384338", "0"),
    ("train/level2/lesion_edit_level2_00000_flip.png", "flip", "train/level2/lesion_edit_level2_00000.png",
     "level0/level0_0002.jpg", "", ""),
    ("val/level0/level0_0010.jpg", "real", "level0/level0_0010.jpg", "level0/level0_0010.jpg", "", ""),
    ("val/level2/level2_0011.jpg", "real", "level2/level2_0011.jpg", "level2/level2_0011.jpg", "", ""),
    ("test/level1/level1_0020.JPG", "real", "level1/level1_0020.JPG", "level1/level1_0020.JPG", "", ""),
    ("test/level2/level2_0021.png", "real", "level2/level2_0021.png", "level2/level2_0021.png", "", ""),
]  # fmt: skip


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_release(folder: Path) -> Path:
    """A data/fused folder in the files format: small PNGs and JPEGs, manifest.csv with real sha256s."""
    rows = []
    for i, (path, origin, source, root, seed, cluster) in enumerate(IMAGES):
        file = folder / path
        file.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 5), (20 * i, 255 - 20 * i, 7 * i)).save(file)  # the suffix picks the format
        detail = {"steps": 12, "checkpoint": "7e5ca5a2"} if seed else ""
        split, label = path.split("/")[:2]
        columns = dict(origin=origin, source=source, root=root, seed=seed, cluster=cluster, detail=detail)
        rows.append(manifest.row(path=path, split=split, label=label, sha256=sha(file), **columns))
    manifest.write(rows, folder / manifest.FILENAME)
    return folder


def sharded_release(files: Path, folder: Path) -> Path:
    """The same release in the sharded format, written by shards.write (tiny shards: several a split).
    Only its manifest's shard column says where the tars are."""
    fused = manifest.read(files / manifest.FILENAME)
    written = shards.write(fused, {p: files / p for p in fused.path}, folder, shard_mb=0.002)
    manifest.write(written, folder / manifest.FILENAME)
    return folder


def rai(**changes) -> RAI:
    texts = dict(
        data_collection="Photographs of faces with acne, graded by dermatologists (the source dataset).",
        data_collection_type=["Secondary Data analysis", "Software Collection"],
        data_limitations=["Synthetic images are for training only; val and test are real images only."],
        data_biases=["Few images of the severe grades; skin tones as in the source dataset."],
        personal_sensitive_information=["Face photographs: health data about identifiable people."],
        data_use_cases=["Training and evaluating acne-grade classifiers; not for clinical use."],
        data_collection_raw_data="The source dataset's images, unchanged in val and test.",
        data_preprocessing_protocol=["Exact and near duplicates removed", "Split by patient"],
        data_manipulation_protocol="Horizontal flips and synthetic images (diffusion, lesion_edit) in train.",
        data_annotation_protocol="The source dataset's grades; a synthetic image has its target class.",
        data_social_impact="Better classifiers of rare grades; synthetic images may pass for real ones.",
        data_release_maintenance_plan="Versioned releases (git tags); a release is never rewritten.",
    )  # fmt: skip
    return RAI(**{**texts, **changes})


def describe(folder: Path, **changes) -> Path:
    """Write the folder's croissant.json (every recommended property given); its path."""
    kwargs = dict(
        name="acne-balanced",
        description="Acne severity grades, balanced with flips and synthetic images.",
        license="https://spdx.org/licenses/CC-BY-4.0.html",
        url="https://example.org/datasets/acne-balanced",
        version="v1.2.0",
        citation="@misc{acne_balanced, title={acne-balanced}, year={2026}}",
        classes=CLASSES,
        rai=rai(),
        date_published=dt.date(2026, 7, 1),
        creator="Example Lab",
        keywords=["medical imaging", "acne", "synthetic data"],
        derived_from=["https://example.org/datasets/acne"],
    )
    fused = manifest.read(folder / manifest.FILENAME)
    metadata = croissant.croissant(folder, fused, **{**kwargs, **changes})
    path = folder / croissant.FILENAME
    croissant.write(path, metadata)
    return path


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict[str, Path]:
    """Both formats, each with its croissant.json."""
    files = files_release(tmp_path_factory.mktemp("files") / "fused")
    sharded = sharded_release(files, tmp_path_factory.mktemp("sharded") / "fused")
    for folder in (files, sharded):
        describe(folder)
    return {"files": files, "shards": sharded}


def manifest_rows(folder: Path) -> list[dict[str, str]]:
    """manifest.csv read with the csv module, independently of the code under test."""
    with open(folder / manifest.FILENAME, newline="") as f:
        return list(csv.DictReader(f))


def image_bytes(folder: Path, row: dict[str, str]) -> bytes:
    """A manifest row's image: its file, or its offset and size in its tar."""
    if not row.get("shard"):
        return (folder / row["path"]).read_bytes()
    with open(folder / row["shard"], "rb") as f:
        f.seek(int(row["offset"]))
        return f.read(int(row["size"]))


def text(value) -> str:
    """A record value as text: mlcroissant gives sc:Text as bytes, an empty cell as None."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def load(path: Path, record_set: str) -> list[dict]:
    return list(mlc.Dataset(jsonld=path).records(record_set))


@pytest.mark.parametrize("layout", ["files", "shards"])
def test_mlcroissant_validates_the_metadata_without_errors_or_warnings(releases, layout):
    dataset = mlc.Dataset(jsonld=releases[layout] / croissant.FILENAME)
    assert not dataset.metadata.ctx.issues.errors
    assert not dataset.metadata.ctx.issues.warnings, dataset.metadata.ctx.issues.report()
    assert dataset.metadata.ctx.is_v1_1()
    assert dataset.metadata.version == "1.2.0"  # the tag's v dropped: Croissant's MAJOR.MINOR.PATCH


@pytest.mark.parametrize("layout", ["files", "shards"])
def test_the_records_are_the_manifest_rows(releases, layout):
    folder = releases[layout]
    expected = {r["path"]: r for r in manifest_rows(folder)}
    records = load(folder / croissant.FILENAME, "images")
    got = {text(r["images/path"]): r for r in records}
    assert len(records) == len(expected) == len(IMAGES)
    assert got.keys() == expected.keys()
    for path, row in expected.items():
        record = got[path]
        for column in ("split", "label", "origin", "source", "root", "sha256", "detail"):
            assert text(record[f"images/{column}"]) == row[column], (path, column)
        for column in ("seed", "cluster"):  # integers; empty for real images and flips
            assert text(record[f"images/{column}"]) == row[column], (path, column)
        assert row["sha256"] == hashlib.sha256(image_bytes(folder, row)).hexdigest()
        if layout == "shards":
            assert text(record["images/shard"]) == row["shard"]
            assert (record["images/offset"], record["images/size"]) == (int(row["offset"]), int(row["size"]))
            # pandas (mlcroissant's CSV reader) reads the zero-padded key as a number
            assert int(text(record["images/key"])) == int(row["key"])


def test_labels_splits_and_origins_are_categorical(releases):
    metadata = json.loads((releases["files"] / croissant.FILENAME).read_text())
    fields = {f["@id"]: f for f in metadata["recordSet"][0]["field"]}
    assert fields["images/label"]["references"] == {"field": {"@id": "classes/name"}}
    assert fields["images/label"]["dataType"] == ["sc:Text", "cr:Label"]
    assert fields["images/split"]["references"] == {"field": {"@id": "splits/name"}}
    assert fields["images/root"]["equivalentProperty"] == "prov:wasDerivedFrom"
    path = releases["files"] / croissant.FILENAME
    assert [r["classes/name"] for r in load(path, "classes")] == CLASSES
    assert {r["splits/name"]: r["splits/url"] for r in load(path, "splits")} == {
        "train": "cr:TrainingSplit",
        "val": "cr:ValidationSplit",
        "test": "cr:TestSplit",
    }
    origins = {r["origins/name"]: r["origins/synthetic"] for r in load(path, "origins")}
    assert origins == {"real": False, "flip": False, "diffusion": True, "lesion_edit": True}
    # every value of the categorical columns is among its enumeration's
    rows = manifest_rows(releases["files"])
    assert {r["label"] for r in rows} <= set(CLASSES) and {r["origin"] for r in rows} <= origins.keys()


@pytest.mark.parametrize("layout", ["files", "shards"])
def test_every_file_object_carries_the_sha256_of_its_file(releases, layout):
    folder = releases[layout]
    metadata = json.loads((folder / croissant.FILENAME).read_text())
    objects = {d["contentUrl"]: d for d in metadata["distribution"] if d["@type"] == "cr:FileObject"}
    tars = sorted({r["shard"] for r in manifest_rows(folder)}) if layout == "shards" else []
    assert sorted(objects) == sorted([manifest.FILENAME, *tars])
    if layout == "shards":
        assert len(tars) > 3  # several shards in a split
    for url, obj in objects.items():
        assert obj["sha256"] == sha(folder / url), url
        assert obj["contentSize"] == f"{(folder / url).stat().st_size} B"
        assert not Path(url).is_absolute()


def test_the_file_sets_of_the_splits_hold_exactly_the_split_images(releases, tmp_path):
    """Files format: each split's FileSet, read by mlcroissant, lists the manifest's files of the split."""
    folder = tmp_path / "fused"
    shutil.copytree(releases["files"], folder)
    metadata = json.loads((folder / croissant.FILENAME).read_text())
    rows = manifest_rows(folder)
    for split in ("train", "val", "test"):
        probe = copy.deepcopy(metadata)
        field = {
            "@type": "cr:Field",
            "@id": "probe/path",
            "dataType": "sc:Text",
            "source": {"fileSet": {"@id": f"{split}-images"}, "extract": {"fileProperty": "fullpath"}},
        }
        probe["recordSet"].append({"@type": "cr:RecordSet", "@id": "probe", "field": [field]})
        (folder / "probe.json").write_text(json.dumps(probe))
        listed = sorted(text(r["probe/path"]) for r in load(folder / "probe.json", "probe"))
        assert listed == sorted(r["path"] for r in rows if r["split"] == split)


def test_the_sharded_file_sets_are_in_their_split_tars(releases):
    folder = releases["shards"]
    metadata = json.loads((folder / croissant.FILENAME).read_text())
    sets = {d["@id"]: d for d in metadata["distribution"] if d["@type"] == "cr:FileSet"}
    rows = manifest_rows(folder)
    for split in ("train", "val", "test"):
        tars = sorted({r["shard"] for r in rows if r["split"] == split})
        assert sets[f"{split}-images"]["containedIn"] == [{"@id": t} for t in tars]
        # the tar members are <key>.<extension in lower case>
        extensions = sorted({Path(r["path"]).suffix[1:].lower() for r in rows if r["split"] == split})
        assert sets[f"{split}-images"]["includes"] == [f"*.{e}" for e in extensions]
        assert sets[f"{split}-images"]["encodingFormat"] == (
            "image/jpeg" if split == "val" else ["image/jpeg", "image/png"]
        )


def test_responsible_ai_and_provenance(releases):
    metadata = json.loads((releases["files"] / croissant.FILENAME).read_text())
    assert metadata["conformsTo"] == [croissant.CROISSANT, "http://mlcommons.org/croissant/RAI/1.0"]
    assert metadata["@context"]["rai"] == "http://mlcommons.org/croissant/RAI/"
    assert metadata["@context"]["prov"] == "http://www.w3.org/ns/prov#"
    assert metadata["rai:hasSyntheticData"] is True
    for key in ("dataCollection", "dataCollectionType", "dataLimitations", "dataBiases", "dataUseCases",
                "personalSensitiveInformation", "dataManipulationProtocol"):  # fmt: skip
        assert metadata[f"rai:{key}"], key
    assert metadata["prov:wasDerivedFrom"] == [{"@id": "https://example.org/datasets/acne"}]
    assert metadata["prov:wasGeneratedBy"]["@type"] == "prov:Activity"
    assert "1 diffusion, 2 flip, 1 lesion_edit" in metadata["prov:wasGeneratedBy"]["prov:label"]
    assert metadata["datePublished"] == "2026-07-01" and metadata["version"] == "1.2.0"
    # mlcroissant reads the RAI properties it knows
    dataset = mlc.Dataset(jsonld=releases["files"] / croissant.FILENAME)
    assert dataset.metadata.data_collection == rai().data_collection
    assert dataset.metadata.data_biases == list(rai().data_biases)


def test_the_synthetic_flag_follows_the_manifest(tmp_path):
    folder = files_release(tmp_path / "fused")
    with pytest.raises(ValueError, match="has synthetic images"):
        describe(folder, rai=rai(has_synthetic_data=False))
    fused = manifest.read(folder / manifest.FILENAME)
    no_synthesis = fused[fused.origin.isin(["real", "flip"])]  # a flip is no synthetic image
    manifest.write(no_synthesis, folder / manifest.FILENAME)
    metadata = json.loads(describe(folder).read_text())
    assert metadata["rai:hasSyntheticData"] is False


def test_inputs_that_would_make_a_wrong_description_are_refused(tmp_path):
    folder = files_release(tmp_path / "fused")
    with pytest.raises(ValueError, match="not among the classes"):
        describe(folder, classes=["level0", "level1"])
    fused = manifest.read(folder / manifest.FILENAME)
    with pytest.raises(ValueError, match="rows"):  # a frame that is not the folder's manifest.csv
        croissant.croissant(
            folder, fused.iloc[1:], name="x", description="x", license="x", url=None, version=None,
            citation=None, classes=CLASSES, rai=rai(),
        )  # fmt: skip


def test_optional_properties_left_out_and_mlcroissant_only_warns(tmp_path):
    folder = files_release(tmp_path / "fused")
    path = describe(folder, url=None, version=None, citation=None, date_published=None, creator=None,
                    keywords=(), derived_from=())  # fmt: skip
    metadata = json.loads(path.read_text())
    for key in ("url", "version", "citeAs", "datePublished", "creator", "keywords", "prov:wasDerivedFrom"):
        assert key not in metadata
    dataset = mlc.Dataset(jsonld=path)
    assert not dataset.metadata.ctx.issues.errors
    assert dataset.metadata.ctx.issues.warnings  # recommended properties missing: warnings only
    assert len(list(dataset.records("images"))) == len(IMAGES)


def test_the_metadata_moves_with_the_folder(releases, tmp_path):
    for layout, folder in releases.items():
        moved = tmp_path / layout / "elsewhere"
        shutil.copytree(folder, moved)
        assert {text(r["images/path"]) for r in load(moved / croissant.FILENAME, "images")} == {
            r["path"] for r in manifest_rows(folder)
        }


# Fault injection: mlcroissant must refuse a description that is wrong, so these tests can fail.


def corrupted(folder: Path, tmp_path: Path, change) -> Path:
    """A copy of the release whose croissant.json `change` (a function of the JSON dict) altered."""
    copy_ = tmp_path / "copy"
    shutil.copytree(folder, copy_)
    metadata = json.loads((copy_ / croissant.FILENAME).read_text())
    change(metadata)
    (copy_ / croissant.FILENAME).write_text(json.dumps(metadata))
    return copy_ / croissant.FILENAME


def manifest_object(metadata: dict) -> dict:
    return next(d for d in metadata["distribution"] if d["@id"] == manifest.FILENAME)


@pytest.mark.parametrize("layout", ["files", "shards"])
def test_a_wrong_checksum_is_refused(releases, tmp_path, layout):
    path = corrupted(releases[layout], tmp_path, lambda m: manifest_object(m).update(sha256="0" * 64))
    dataset = mlc.Dataset(jsonld=path)  # the structure is still valid ...
    with pytest.raises(mlc.GenerationError):  # ... but the file is not the one described
        list(dataset.records("images"))


def test_a_file_changed_after_the_description_is_refused(releases, tmp_path):
    folder = tmp_path / "fused"
    shutil.copytree(releases["files"], folder)
    rows = manifest_rows(folder)
    rows[0]["label"] = "level2"  # relabelled after the metadata was written
    pd.DataFrame(rows).to_csv(folder / manifest.FILENAME, index=False)
    with pytest.raises(mlc.GenerationError):
        load(folder / croissant.FILENAME, "images")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: manifest_object(m).pop("contentUrl"), id="no-contentUrl"),
        pytest.param(lambda m: m["recordSet"][0]["field"][0].pop("dataType"), id="no-dataType"),
        pytest.param(lambda m: m.pop("@type"), id="not-a-dataset"),
        pytest.param(lambda m: m.update(conformsTo="http://mlcommons.org/croissant/9"), id="bad-conformsTo"),
        pytest.param(
            lambda m: m["recordSet"][0]["field"][2].update(references={"field": {"@id": "grades/name"}}),
            id="dangling-reference",
        ),
    ],
)
def test_a_description_missing_what_croissant_requires_is_refused(releases, tmp_path, change):
    path = corrupted(releases["files"], tmp_path, change)
    with pytest.raises(mlc.ValidationError):
        mlc.Dataset(jsonld=path)


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / croissant.FILENAME
    path.write_text("old")
    croissant.write(path, {"name": "x"})
    assert json.loads(path.read_text()) == {"name": "x"}
    assert [p.name for p in tmp_path.iterdir()] == [croissant.FILENAME]  # no temporary file left

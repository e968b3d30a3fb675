"""`rebalance init SOURCE` on small files shaped like each public layout (test_examples.py makes
them): the classes, counts, split, groups and columns it proposes, the params it writes (valid, no
lesion_edit without lesion counts), --merge, --force, --dry-run, and one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO
from imagegen import smooth_image
from test_examples import EXAMPLES, LAYOUTS

from rebalance import config, init
from rebalance.cli import main

LEVELS = ["level0", "level1", "level2", "level3"]
# per layout: classes with their counts, the official split, the group, raw.csv keys proposed
EXPECTED = {
    "acne04": {
        "classes": dict.fromkeys(LEVELS, 12),
        "splits": {"train": dict.fromkeys(LEVELS, 9), "test": dict.fromkeys(LEVELS, 3)},
        "csv": {
            "header": ["path", "label", "lesions"],
            "path_format": "JPEGImages/{}",
            "split_files": {"test": "NNEW_test_0.txt"},
        },
    },  # fmt: skip
    "isic2024": {
        "classes": {"class0": 16, "class1": 12},
        "group_by": "patient_id",
        "csv": {"path": "isic_id", "label": "target", "path_format": "train-image/image/{}.jpg"},
    },
    "isic2019": {
        "classes": dict.fromkeys(["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"], 5),
        "csv": {
            "path": "image",
            "path_format": "ISIC_2019_Training_Input/{}.jpg",
        },  # label: the one-hot columns
    },
    "ham10000": {
        "classes": dict.fromkeys(["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"], 7),
        "group_by": "lesion_id",
        "csv": {
            "path": "image_id",
            "label": "dx",
            "path_format": ["HAM10000_images_part_1/{}.jpg", "HAM10000_images_part_2/{}.jpg"],
        },
    },  # fmt: skip
    "rsna": {
        "classes": {"class0": 10, "class1": 6},
        "csv": {"path": "patientId", "label": "Target", "path_format": "stage_2_train_images/{}.dcm"},
    },
    "chestxray14": {
        "classes": {"No Finding": 12, "Pneumonia": 12},  # Effusion|Pneumonia is Pneumonia
        "group_by": "Patient ID",
        "csv": {
            "path": "Image Index",
            "label": "Finding Labels",
            "label_separator": "|",
            "path_format": ["images_001/images/{}", "images_002/images/{}"],
        },
    },  # fmt: skip
    "chexpert": {
        "classes": {"No Finding": 12, "Pneumonia": 12},
        "group_pattern": r"patient\d+",
        "csv": {"label": ["No Finding", "Pneumonia"]},  # paths from the folder above: read as they are
    },
    "kermany": {
        "classes": {"NORMAL": 20, "PNEUMONIA": 20},
        "splits": {
            s: dict.fromkeys(["NORMAL", "PNEUMONIA"], n) for s, n in (("train", 12), ("val", 2), ("test", 6))
        },
        "group_pattern": r"person\d+|IM-\d+",
        "official_val": "redraw",
    },
    "pneumoniamnist": {
        "classes": {"class0": 19, "class1": 14},
        "official_val": "redraw",  # 3 val images per class
        "splits": {
            "train": {"class0": 12, "class1": 8},
            "val": {"class0": 3, "class1": 3},
            "test": {"class0": 4, "class1": 3},
        },
    },  # fmt: skip
    "dicom": {"classes": {"abnormal": 6, "normal": 6}},
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    return {name: make(root / name) for name, make in LAYOUTS.items()}


def invoke(repo: Path, *args: str):
    return CliRunner().invoke(main, ["init", "-C", str(repo), *args])


def written(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())


def one_line(result) -> str:
    """The refusal's only line: exit 1 through SystemExit (no exception escaped), no traceback."""
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_init_finds_the_classes_split_and_groups_of_each_layout(tmp_path, sources, name):
    expected = EXPECTED[name]
    found = init.inspect(str(sources[name]))
    assert found.classes == expected["classes"]
    assert list(found.classes) == list(expected["classes"])  # in order
    assert found.splits == expected.get("splits", {})
    assert (found.lesions is not None) == (name == "acne04")  # ACNE04's lists carry lesion counts
    assert found.kinds.counted == sum(expected["classes"].values()) and found.kinds.sizes

    result = invoke(tmp_path, str(sources[name]), "--no-plan")  # no params.yaml there: the repository's
    assert result.exit_code == 0, result.output
    for c, n in expected["classes"].items():
        assert f"  {c}" in result.output and f" {n}" in result.output
    params = written(tmp_path)
    model = config.load(tmp_path / "params.yaml")
    assert model.dataset.classes == list(expected["classes"]) and model.raw.source == str(sources[name])
    assert model.dataset.group_by == expected.get("group_by")
    assert model.dataset.group_pattern == expected.get("group_pattern")
    assert model.count.official_val == expected.get("official_val", "keep")
    csv = params["raw"]["csv"]
    assert {k: csv[k] for k in expected.get("csv", {})} == expected.get("csv", {})
    if name == "acne04":  # lesion counts: the Hayashi bins and params.yaml's methods stay
        assert model.dataset.lesion_bins == {
            "level0": [0, 5],
            "level1": [6, 20],
            "level2": [21, 50],
            "level3": [51, None],
        }
        assert set(model.synthesize.methods) == {"lesion_edit", "diffusion"}
    else:  # none: no lesion_edit, and no classifier variant of it
        assert model.dataset.lesion_bins is None and dict(model.synthesize.methods) == {"diffusion": 1.0}
        assert all(v.method != "lesion_edit" for v in model.train.variants.values())
    assert (
        params["train"]["variants"]["balanced"]
        == yaml.safe_load((REPO / "params.yaml").read_text())["train"]["variants"]["balanced"]
    )  # the rest is the repository's params.yaml


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_init_with_the_layouts_example_plans_the_files(tmp_path, sources, name):
    """SOURCE + examples/params/<name>.yaml: the example's classes, SOURCE kept over its
    placeholder, and the plan printed (the same code as `rebalance plan`) counts every class."""
    example = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    result = invoke(tmp_path, str(sources[name]), "--merge", str(EXAMPLES / f"{name}.yaml"))
    assert result.exit_code == 0, result.output
    params = written(tmp_path)
    assert params["dataset"]["classes"] == example["dataset"]["classes"]
    assert (
        params["raw"]["source"] == str(sources[name])
        and f"kept over {EXAMPLES / name}.yaml's" in result.output
    )
    assert f"Balancing plan for {example['dataset']['name']}" in result.output
    table = result.output[result.output.index("Real images per split") :]
    for c in example["dataset"]["classes"]:
        assert f"| {c} " in result.output and c in table


def test_init_refuses_to_overwrite_without_force(tmp_path, sources):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_bytes()
    result = invoke(tmp_path, str(sources["dicom"]))
    assert result.exit_code == 1
    assert "error: params.yaml exists; rerun with --force to write it" in result.output
    assert "\n-  name: acne04-demo\n" in result.output and "\n+  name: dicom\n" in result.output  # the diff
    assert "Balancing plan" not in result.output
    assert (tmp_path / "params.yaml").read_bytes() == before

    dry = invoke(tmp_path, str(sources["dicom"]), "--dry-run")
    assert dry.exit_code == 0 and "dry run: params.yaml not written" in dry.output
    assert "Balancing plan for dicom" in dry.output  # the plan of the params it would write
    assert (tmp_path / "params.yaml").read_bytes() == before

    forced = invoke(tmp_path, str(sources["dicom"]), "--force", "--no-plan")
    assert forced.exit_code == 0 and "wrote params.yaml" in forced.output
    assert config.load(tmp_path / "params.yaml").dataset.classes == ["abnormal", "normal"]
    text = (tmp_path / "params.yaml").read_text()
    assert text.startswith(f"# Written by: rebalance init {sources['dicom']}\n")
    assert "docs/reference/params.md" in text.split("dataset:")[0]

    again = invoke(tmp_path, str(sources["dicom"]), "--no-plan")  # the same values: nothing to write
    assert again.exit_code == 0 and "already holds these values" in again.output


def test_merge_overlays_apply_in_order(tmp_path, sources):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("count:\n  target: {n: 99}\ndataset: {name: mine}\n")
    second.write_text(
        "dataset: {name: yours}\nsynthesize:\n  methods: {diffusion: 0.5, gan: 0.5}\n"
        "generators: {diffusion: {steps: 7}, gan: {}}\n"
    )
    repo = tmp_path / "repo"
    repo.mkdir()
    result = invoke(repo, str(sources["kermany"]), "--merge", str(first), "--merge", str(second), "--no-plan")
    assert result.exit_code == 0, result.output
    params = written(repo)
    assert params["count"]["target"] == {"strategy": "fixed", "n": 99}  # a mapping merges key by key
    assert params["dataset"]["name"] == "yours"  # the later overlay wins
    assert params["dataset"]["classes"] == ["NORMAL", "PNEUMONIA"]  # detected keys stay
    assert params["synthesize"]["methods"] == {"diffusion": 0.5, "gan": 0.5}  # replaced whole
    assert params["generators"] == {"diffusion": {"steps": 7}, "gan": {}}  # replaced whole
    assert config.load(repo / "params.yaml").generators.diffusion.resolution == 32  # the schema's default


def test_merge_unit_replaces_choices_whole():
    variants = {"real": {"data": "real"}, "le": {"data": "balanced", "method": "lesion_edit"}}
    base = {
        "synthesize": {"methods": {"lesion_edit": 0.5, "diffusion": 0.5}, "seed": 0},
        "train": {"variants": variants},
    }
    merged = init.merge(base, {"synthesize": {"methods": {"diffusion": 1.0}}, "train": {"seeds": [1]}})
    assert merged["synthesize"] == {"methods": {"diffusion": 1.0}, "seed": 0}
    assert merged["train"] == {"variants": {"real": {"data": "real"}}, "seeds": [1]}  # lesion_edit's row gone
    assert base["synthesize"]["methods"] == {"lesion_edit": 0.5, "diffusion": 0.5}  # not modified


def test_without_the_repositorys_params_the_schemas_defaults_are_the_base(tmp_path, sources, monkeypatch):
    """rebalance installed without this repository's params.yaml: every key from the schema."""
    monkeypatch.setattr(init, "REPOSITORY_PARAMS", tmp_path / "absent.yaml")
    proposal = init.build(str(sources["ham10000"]), tmp_path / "params.yaml")
    assert proposal.base["train"]["variants"].keys() == proposal.params["train"]["variants"].keys()
    assert proposal.model.dataset.classes == list(EXPECTED["ham10000"]["classes"])
    assert set(proposal.params["generators"]) == {"diffusion"}
    assert config.validate(yaml.safe_load(init.render(proposal.params))).raw.source == str(
        sources["ham10000"]
    )


def bad_inputs(tmp_path: Path, sources: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    """name -> (init's arguments, what its one line says)."""
    (tmp_path / "empty").mkdir()
    loose = tmp_path / "loose"
    loose.mkdir()
    for i in range(3):
        smooth_image(np.random.default_rng(i), 16).save(loose / f"{i}.png")
    table = tmp_path / "table"
    table.mkdir()
    for i in range(6):
        smooth_image(np.random.default_rng(i), 16).save(table / f"{i}.png")
    pd.DataFrame({"file": [f"{i}.png" for i in range(6)], "age": range(6)}).to_csv(
        table / "meta.csv", index=False
    )
    (tmp_path / "single" / "only").mkdir(parents=True)
    for i in range(3):
        smooth_image(np.random.default_rng(i), 16).save(tmp_path / "single" / "only" / f"{i}.png")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "list.yaml").write_text("- dataset\n- raw\n")
    (tmp_path / "typo.yaml").write_text("count:\n  targte: {n: 5}\n")
    (tmp_path / "broken.yaml").write_text("count: [1, 2\n")
    kermany = str(sources["kermany"])

    def merging(name: str) -> list[str]:
        return [kermany, "--merge", str(tmp_path / name)]

    return {
        "missing": ([str(tmp_path / "nowhere")], f"{tmp_path / 'nowhere'}: not found; give a folder"),
        "empty": ([str(tmp_path / "empty")], "empty: no images found (it is empty)"),
        "loose": ([str(loose)], "images lie directly in the folder, in no class folder"),
        "one class": ([str(tmp_path / "single")], "single: one class folder only (only/, 3 images)"),
        "no label": (
            [str(table / "meta.csv")],
            "meta.csv: no column recognisable as the label (columns: file",
        ),
        "junk npz": ([str(tmp_path / "junk.npz")], "junk.npz: cannot read the .npz"),
        "merge list": (merging("list.yaml"), "list.yaml: --merge overlay must be a YAML mapping"),
        "merge missing": (merging("nope.yaml"), "nope.yaml: --merge overlay not found"),
        "merge yaml": (merging("broken.yaml"), "broken.yaml:2: invalid YAML"),
        "merge key": (merging("typo.yaml"), "`count.targte` is not a known key; did you mean `target`?"),
    }


def test_bad_inputs_are_one_line_errors(tmp_path, sources):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, (args, text) in bad_inputs(tmp_path, sources).items():
        line = one_line(invoke(repo, *args, "--no-plan"))
        assert text in line, (name, line)
        if name == "merge key":
            assert line.endswith(f"(set by {tmp_path / 'typo.yaml'})")
    assert not (repo / "params.yaml").exists()


def test_the_installed_command_reports_one_line(tmp_path):
    """The console script itself: a missing source is one line on stderr, exit 1."""
    rebalance = Path(sys.executable).parent / "rebalance"
    proc = subprocess.run(
        [str(rebalance), "init", str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: not found; give a folder of class folders, a .csv/.tsv/.txt table "
        "of images or a MedMNIST .npz (relative to the repository, or absolute)"
    ]
    assert (
        "rebalance init [OPTIONS] SOURCE"
        in subprocess.run([str(rebalance), "init", "--help"], capture_output=True, text=True).stdout
    )

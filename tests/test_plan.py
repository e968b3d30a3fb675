"""The balancing plan and `rebalance plan` on a known folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO
from PIL import Image

from stages.cli import main
from stages.dataset import plan

SIZES = {"a": 40, "b": 20, "c": 10}


@pytest.fixture
def folder_params(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for label, n in SIZES.items():
        (src / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(src / label / f"{i}.png")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="toy", classes=list(SIZES), lesion_bins=None)
    params["raw"]["source"] = str(src)
    params["count"]["split"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    params["count"]["target"] = {"strategy": "fixed", "n": 20}
    params["synthesize"]["methods"] = {"lesion_edit": 0.5, "diffusion": 0.5}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_plan_table_for_a_known_folder(folder_params):
    result = CliRunner().invoke(main, ["plan", "--params", str(folder_params)])
    assert result.exit_code == 0, result.output
    lines = [line.replace(" ", "") for line in result.output.splitlines()]
    # class | original (train) | to generate | lesion_edit | diffusion | total
    assert "|a|24|0|0|0|24|" in lines
    assert "|b|12|8|4|4|20|" in lines
    assert "|c|6|14|7|7|20|" in lines
    assert "|total|42|22|11|11|64|" in lines
    # per-split table: split | images | a | b | c | max:min
    assert "|train|42|24|12|6|1:4.00|" in lines
    assert "|test|14|8|4|2|1:4.00|" in lines


def test_plan_json_matches_table(folder_params):
    result = CliRunner().invoke(main, ["plan", "--params", str(folder_params), "--format", "json"])
    counts = json.loads(result.output)
    assert counts["raw"] == SIZES
    assert counts["target"] == {"a": 24, "b": 20, "c": 20}
    assert counts["generated"]["c"] == {"lesion_edit": 7, "diffusion": 7}


def test_plan_on_bad_params_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synthesize"]["methods"] = {"lesion_edit": 0.7, "diffusion": 0.7}
    path.write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(main, ["plan", "--params", str(path)])
    assert result.exit_code == 1
    assert "synthesize.methods" in result.output and len(result.output.strip().splitlines()) == 1


def test_split_is_stratified_seeded_and_disjoint():
    images = [(f"{c}/{i}.png", c) for c, n in SIZES.items() for i in range(n)]
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    a = plan.split(images, fractions, seed=1)
    assert a == plan.split(images, fractions, seed=1)
    assert a != plan.split(images, fractions, seed=2)
    assert set(a) == {n for n, _ in images}
    counts = plan.split_counts(images, a, list(SIZES))
    assert counts["test"] == {"a": 8, "b": 4, "c": 2}


@pytest.mark.parametrize(
    "total,shares,expected",
    [
        (11, {"x": 0.5, "y": 0.5}, {"x": 6, "y": 5}),
        (10, {"x": 1.0}, {"x": 10}),
        (7, {"x": 0.2, "y": 0.3, "z": 0.5}, {"x": 1, "y": 2, "z": 4}),
        (0, {"x": 0.5, "y": 0.5}, {"x": 0, "y": 0}),
    ],
)
def test_allocate_sums_to_total(total, shares, expected):
    assert plan.allocate(total, shares) == expected


def test_targets():
    assert plan.targets({"a": 513, "b": 182}, "fixed", 400) == {"a": 513, "b": 400}
    assert plan.targets({"a": 513, "b": 182}, "max") == {"a": 513, "b": 513}

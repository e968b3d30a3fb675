"""The balancing plan and `rebalance plan` on a known folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO, deep_update
from imagegen import make_folder, stage, workdir
from PIL import Image

from rebalance.cli import main
from rebalance.dataset import plan

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
    params["generators"]["gan"] = {}  # method gan samples the GAN this repository trains
    # two methods (lesion_edit's variant dropped with lesion_edit)
    params = deep_update(params, {"synthesize": {"methods": {"gan": 0.5, "diffusion": 0.5}}})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_plan_table_for_a_known_folder(folder_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/raw here: the plan reads the source folder
    result = CliRunner().invoke(main, ["plan", "--params", str(folder_params), "--format", "json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["raw"] == SIZES and counts["split_method"] == "hash"
    assert counts["split_identity"] == "content" and counts["duplicates"] == []
    train = counts["splits"]["train"]
    assert {c: sum(counts["splits"][s][c] for s in counts["splits"]) for c in SIZES} == SIZES
    assert all(abs(train[c] - 0.6 * n) <= 0.25 * n for c, n in SIZES.items())  # close to, not exactly, 60%
    assert counts["target"] == {c: max(20, train[c]) for c in SIZES}
    result = CliRunner().invoke(main, ["plan", "--params", str(folder_params)])
    assert result.exit_code == 0, result.output
    lines = [line.replace(" ", "") for line in result.output.splitlines()]
    # class | original (train) | to generate | <each method> | total | synthetic per real
    for c in SIZES:
        gen = counts["generated"][c]
        ratio = f"{sum(gen.values()) / train[c]:.2f}"
        assert counts["synthetic_ratio"][c] == round(sum(gen.values()) / train[c], 2)
        row = [c, train[c], sum(gen.values()), *gen.values(), counts["target"][c], ratio]
        assert "|" + "|".join(map(str, row)) + "|" in lines
    # per-split table: split | images | a | b | c | max:min
    test = counts["splits"]["test"]
    assert f"|test|{sum(test.values())}|{test['a']}|{test['b']}|{test['c']}|" in "\n".join(lines)
    assert any(x.startswith("Split:eachimagebyahash") for x in lines)


def test_plan_matches_stage_count_before_and_after_raw(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_folder(src, {"a": 15, "b": 9})
    Image.open(src / "a/0.png").save(src / "a/0_copy.bmp")
    work = workdir(tmp_path, src, ["a", "b"])
    monkeypatch.chdir(work)
    before = CliRunner().invoke(main, ["plan", "--format", "json"])
    assert before.exit_code == 0, before.output
    stage(work, "raw")
    after = CliRunner().invoke(main, ["plan", "--format", "json"])
    stage(work, "count")
    counts = json.loads((work / "metrics/counts.json").read_text())
    assert json.loads(before.output) == json.loads(after.output) == counts
    assert counts["duplicates"] == [["a/0.png", "a/0_copy.bmp"]]


def test_plan_for_the_demo_before_repro_is_an_estimate(tmp_path, monkeypatch):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["raw"]["demo"]["scale"] = 0.05
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plan", "--format", "json"])
    counts = json.loads(result.output)
    assert counts["split_identity"] == "file name" and counts["raw"]["level3"] == 10
    result = CliRunner().invoke(main, ["plan"])
    assert "ESTIMATED from file names" in result.output


def test_plan_on_bad_params_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synthesize"]["methods"] = {"lesion_edit": 0.7, "diffusion": 0.7}
    path.write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(main, ["plan", "--params", str(path)])
    assert result.exit_code == 1
    assert "synthesize.methods" in result.output and len(result.output.strip().splitlines()) == 1


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

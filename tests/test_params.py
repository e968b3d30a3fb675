"""Bad params give one-line errors that name the key and the fix."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO, deep_update

from stages import params

DEFAULT = yaml.safe_load((REPO / "params.yaml").read_text())


def test_default_params_are_valid():
    params.validate(copy.deepcopy(DEFAULT))


@pytest.mark.parametrize(
    "update,key",
    [
        ({"synthesize": {"methods": {"lesion_edit": 0.5}}}, "synthesize.methods"),
        ({"count": {"split": {"train": 0.9, "val": 0.2, "test": 0.1}}}, "count.split"),
        ({"count": {"target": {"strategy": "median"}}}, "count.target.strategy"),
        ({"dataset": {"classes": ["a"]}}, "dataset.classes"),
        ({"dataset": {"lesion_bins": {"level0": [5, 0]}}}, "dataset.lesion_bins.level0"),
        ({"flip": {"splits": ["test"]}}, "flip.splits"),
        ({"train": {"headline": "nope"}}, "train.headline"),
        ({"raw": {"on_bad_file": "ignore"}}, "raw.on_bad_file"),
    ],
)
def test_bad_value_names_its_key(update, key):
    bad = deep_update(copy.deepcopy(DEFAULT), update)
    with pytest.raises(params.ParamsError) as err:
        params.validate(bad)
    assert f"`{key}`" in str(err.value) and "\n" not in str(err.value)


def test_missing_group(tmp_path):
    bad = copy.deepcopy(DEFAULT)
    del bad["flip"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(params.ParamsError, match="`flip` is missing"):
        params.load(path)


def test_grade_of_uses_inclusive_bins_and_open_top():
    bins = params.lesion_bins(DEFAULT)
    assert [params.grade_of(n, bins) for n in (0, 5, 6, 20, 21, 50, 51, 500)] == [
        "level0", "level0", "level1", "level1", "level2", "level2", "level3", "level3",
    ]  # fmt: skip

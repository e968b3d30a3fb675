"""Bad params give one-line errors that name the key and the fix, from the loader, `rebalance plan`
and `dvc repro`, before any stage does work."""

from __future__ import annotations

import copy
import sys

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO, deep_update, make_params, run

from rebalance import config as params
from rebalance.cli import main as cli
from rebalance.config import schema
from rebalance.dataset import grading
from rebalance.synth import methods as synth_methods

DEFAULT = yaml.safe_load((REPO / "params.yaml").read_text())

# The mistakes a new user makes, and the key each error must name.
MISTAKES = [
    (
        {"generators": {"diffusion": {}, "gan": {"processes": 3}}},
        "generators.gan.batch_size",
        "multiple of generators.gan.processes (3)",
    ),
    ({"train": {"processes": 2, "batch_size": 5}}, "train.batch_size", "must be a multiple"),
    ({"raw": {"on_bad_fle": "error"}}, "raw.on_bad_fle", "did you mean `on_bad_file`"),
    ({"synthesise": {"methods": {"lesion_edit": 1.0}}}, "synthesise", "did you mean `synthesize`"),
    (
        {"synthesize": {"methods": {"difusion": 1.0}}},
        "synthesize.methods.difusion",
        "did you mean `diffusion`",
    ),
    ({"count": {"target": {"strategy": "max", "n": -5}}}, "count.target.n", "greater than 0"),
    ({"generators": {"diffusion": {"stepz": 3}}}, "generators.diffusion.stepz", "did you mean `steps`"),
    ({"synthesize": {"methods": {"lesion_edit": 0.5}}}, "synthesize.methods", "sum to 1"),
    ({"count": {"split": {"train": 0.9, "val": 0.2, "test": 0.1}}}, "count.split", "sum to 1"),
    ({"count": {"target": {"strategy": "median"}}}, "count.target.strategy", "'fixed' or 'max'"),
    ({"dataset": {"classes": ["a"]}}, "dataset.classes", "at least 2"),
    ({"dataset": {"lesion_bins": {"level0": [5, 0]}}}, "dataset.lesion_bins.level0", "high >= low"),
    ({"flip": {"splits": ["test"]}}, "flip.splits", "real-only"),
    ({"train": {"headline": "nope"}}, "train.headline", "must name a variant (real"),
    ({"raw": {"on_bad_file": "ignore"}}, "raw.on_bad_file", "'skip' or 'error'"),
    ({"train": {"steps": "100"}}, "train.steps", "valid integer"),
    ({"generators": {"diffusion": {"resolution": 30}}}, "generators.diffusion.resolution", "divisible"),
    ({"generators": {"diffusion": {}, "gan": None}}, "generators.gan", "remove the key"),
    (  # a method sampling a generator nothing trains
        {"synthesize": {"methods": {"gan": 1.0}}, "generators": {}},
        "synthesize.methods.gan",
        "add `gan: {}` to generators",
    ),
    (  # a per-generator variant on real data
        {
            "train": {
                "variants": {"balanced": {"data": "balanced"}, "odd": {"data": "real", "method": "diffusion"}}
            }
        },
        "train.variants.odd.method",
        "needs data: balanced",
    ),
    (  # a control that would differ from the headline in augmentation, not only in synthetic images
        {
            "train": {
                "variants": {
                    "balanced": {"data": "balanced", "augment": True},
                    "real_oversampled": {"data": "real_oversampled"},
                }
            }
        },
        "train.variants.real_oversampled.augment",
        "must equal balanced's (True): the matched control differs",
    ),
    (  # curation's control trained otherwise than the headline it is compared with
        {
            "train": {
                "variants": {
                    "balanced": {"data": "balanced", "augment": True},
                    "balanced_unfiltered": {"data": "balanced_unfiltered", "augment": False},
                }
            }
        },
        "train.variants.balanced_unfiltered.augment",
        "must equal the headline balanced's (True): the unfiltered variant differs",
    ),
    (  # an X-ray folder with the demo's methods: refused before any stage works, not in synthesize
        {"dataset": {"classes": ["a", "b"], "lesion_bins": None}, "raw": {"source": "xrays"}},
        "synthesize.methods.lesion_edit",
        "needs lesion-count grades (dataset.lesion_bins)",
    ),
    ({"raw": {"csv": {"label": ["MEL"]}}}, "raw.csv.label", "at least 2 items"),
    ({"raw": {"csv": {"path_format": ["a/{}.jpg", "b.jpg"]}}}, "raw.csv.path_format.1", "match pattern"),
]

# One unknown key in every group (and nested group) of the schema.
GROUP_PATHS = [
    ["dataset"], ["raw"], ["raw", "demo"], ["count"], ["count", "split"], ["count", "target"],
    ["synthesize"], ["synthesize", "lesion_edit"], ["synthesize", "diffusion"],
    ["synthesize", "diffusion", "mask"], ["synthesize", "diffusion", "sd"], ["generators"],
    ["generators", "diffusion"],
    ["assess"], ["flip"], ["fuse"], ["train"], ["train", "variants", "real"], ["evaluate"],
    ["release"], ["release", "gate"], ["release", "gate", "synthetic"], ["synthesize", "filter"],
]  # fmt: skip


def with_unknown_key(path: list[str]) -> dict:
    """The default params with `bogus_key: 1` added to the group at `path`."""
    bad = copy.deepcopy(DEFAULT)
    node = bad
    for key in path:
        node = node.setdefault(key, {})
    node["bogus_key"] = 1
    return bad


def test_default_params_are_valid_and_filled():
    full = params.validate(copy.deepcopy(DEFAULT))
    assert full.synthesize.lesion_edit.max_sources == 5  # a default params.yaml omits
    assert full.release.gate.checksums is True
    assert full.generators.trained() == ["diffusion"]


def test_params_yaml_values_equal_schema_defaults_where_given():
    """params.yaml shows chosen values; deleting a shown key keeps behaviour (one default place)."""
    full = params.validate(copy.deepcopy(DEFAULT))
    for group in ("assess", "flip", "fuse", "evaluate"):
        bare = copy.deepcopy(DEFAULT)
        bare[group] = {}
        assert getattr(params.validate(bare), group) == getattr(full, group), group
    bare = copy.deepcopy(DEFAULT)
    bare["generators"]["diffusion"] = {}
    assert params.validate(bare).generators == full.generators


@pytest.mark.parametrize("update,key,hint", MISTAKES)
def test_mistake_names_its_key(update, key, hint):
    bad = deep_update(copy.deepcopy(DEFAULT), copy.deepcopy(update))
    with pytest.raises(params.ParamsError) as err:
        params.validate(bad)
    message = str(err.value)
    assert f"`{key}`" in message and hint in message and "\n" not in message, message


@pytest.mark.parametrize("path", GROUP_PATHS, ids=".".join)
def test_unknown_key_in_every_group(path):
    bad = with_unknown_key(path)
    with pytest.raises(params.ParamsError, match=rf"`{'.'.join(path)}.bogus_key` is not a known key"):
        params.validate(bad)


def test_missing_group(tmp_path):
    bad = copy.deepcopy(DEFAULT)
    del bad["flip"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(params.ParamsError, match="`flip` is missing"):
        params.load(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("dataset:\n  name: x\n  classes: [a, b\nraw:\n  source: demo\n")
    with pytest.raises(params.ParamsError, match=r"params.yaml:\d+: invalid YAML") as err:
        params.load(path)
    assert "\n" not in str(err.value)


def test_method_names_agree_with_the_synth_registry():
    assert set(schema.METHODS) == set(synth_methods.REGISTRY)


@pytest.mark.parametrize(
    "update,key,hint", MISTAKES[:5] + [({"generators": {"diffusion": {"stepz": 3}}}, "stepz", "")]
)
def test_rebalance_plan_fails_fast(tmp_path, update, key, hint):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(deep_update(copy.deepcopy(DEFAULT), copy.deepcopy(update))))
    result = CliRunner().invoke(cli, ["plan", "--params", str(path)])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and lines[0].startswith("error:"), result.output


def test_dvc_repro_fails_before_any_stage_works(repo):
    """The first stage to run refuses the whole file; nothing is written under data/."""
    path = repo / "params.yaml"
    path.write_text(path.read_text() + "synthesise:\n  methods: {lesion_edit: 1.0}\n")
    proc = run([sys.executable, "-m", "dvc", "repro"], repo, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors and "`synthesise` is not a known key; did you mean `synthesize`?" in errors[0], proc.stderr
    assert not (repo / "data").exists() or not any((repo / "data").iterdir())


def test_grade_of_uses_inclusive_bins_and_open_top():
    bins = grading.lesion_bins(params.validate(copy.deepcopy(DEFAULT)))
    assert [grading.grade_of(n, bins) for n in (0, 5, 6, 20, 21, 50, 51, 500)] == [
        "level0", "level0", "level1", "level1", "level2", "level2", "level3", "level3",
    ]  # fmt: skip


def test_a_path_in_the_home_folder_is_written_as_in_a_shell(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    updates = {"dataset": {"lesion_bins": None, "metadata": "~/isic/meta.csv"}, "raw": {"source": "~/isic"}}
    p = make_params(updates | {"synthesize": {"methods": {"diffusion": 1.0}}})
    assert p.raw.source == f"{tmp_path}/isic" and p.dataset.metadata == f"{tmp_path}/isic/meta.csv"

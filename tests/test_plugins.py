"""Generator plugins (entry points `rebalance.generators`): the schema accepts an installed one,
a tiny build gives it its own `balanced_<name>` evidence row, its provenance is checked, and
`rebalance plan` then estimates with the measured seconds per image.

The test plugin (tests/data/plugin_pkg) is installed as pip would install it, without a network:
its module and a `.dist-info` made from its pyproject.toml go into a temporary folder put on
sys.path (and PYTHONPATH for the pipeline's processes), removed afterwards.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FEW_VARIANTS, REPO, TINY, commit_all, copy_repo, make_params, run, set_params

from rebalance.cli import main
from rebalance.config import ParamsError
from rebalance.config.synth import plugin_names
from rebalance.core import manifest
from rebalance.core.errors import RebalanceError
from rebalance.synth import methods
from rebalance.synth.base import Context
from rebalance.synth.plugins import PluginMethod

PACKAGE = REPO / "tests/data/plugin_pkg"
SCRIPT = "tests/data/command_gen.py"


def install(site: Path) -> None:
    """The plugin's module and a dist-info (name, version, entry points of its pyproject.toml)."""
    text = (PACKAGE / "pyproject.toml").read_text()
    name = re.search(r'^name = "(.+)"', text, re.M).group(1)
    version = re.search(r'^version = "(.+)"', text, re.M).group(1)
    table = text.split('[project.entry-points."rebalance.generators"]')[1].split("\n[")[0]
    points = "\n".join(f"{k} = {v}" for k, v in re.findall(r'^(\S+) = "(.+)"$', table, re.M))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[rebalance.generators]\n{points}\n")
    shutil.copy(PACKAGE / "tiny_generator.py", site / "tiny_generator.py")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The test plugin installed for this module (its folder, for PYTHONPATH)."""
    site = tmp_path_factory.mktemp("site")
    install(site)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("tiny_generator", None)
    importlib.invalidate_caches()


def test_the_schema_accepts_an_installed_plugin_and_names_both_kinds_for_an_unknown_name(plugin):
    assert "tiny" in plugin_names()
    make_params({"synthesize": {"methods": {"tiny": 1.0}}, "count": {"seconds_per_image": {"tiny": 0.1}}})
    with pytest.raises(ParamsError) as err:
        make_params({"synthesize": {"methods": {"tinyy": 1.0}}})
    message = str(err.value)
    assert "\n" not in message and "did you mean `tiny`" in message
    assert (
        "built-in: lesion_edit, diffusion, gan, command" in message
        and "rebalance.generators): tiny" in message
    )


def test_a_plugin_without_a_training_set_record_needs_allow_external_model(plugin, tmp_path):
    params = make_params({"synthesize": {"methods": {"tiny": 1.0}, "plugins": {"tiny": {"record": False}}}})
    empty = pd.DataFrame(columns=["path", "label", "sha256", "split"])
    ctx = Context(params=params, train_real=empty, raw_dir=tmp_path, out_dir=tmp_path, held_out=empty)
    with pytest.raises(RebalanceError, match=r"plugin 'tiny' .*synthesize.allow_external_model") as err:
        methods.prepare("tiny", ctx)
    assert "\n" not in str(err.value)
    ctx.params.synthesize.allow_external_model = True
    method = methods.prepare("tiny", ctx)
    assert isinstance(method, PluginMethod) and method.record["external"] is True
    key = json.loads(method.cache_key("level1", 5))
    assert key["version"] == "0.3.1" and key["plugin"] == "tiny" and key["block"] == [1, 4]


@pytest.fixture(scope="module")
def built(plugin, tmp_path_factory) -> Path:
    """A tiny build whose images come from the plugin and from method command."""
    repo = copy_repo(tmp_path_factory.mktemp("plugin_build") / "repo")
    cmd = f"{sys.executable} {SCRIPT} write {{class}} {{seeds_file}} {{out_dir}}"
    variants = {n: v for n, v in FEW_VARIANTS.items() if "method" not in v}
    variants |= {f"balanced_{m}": {"data": "balanced", "method": m} for m in ("tiny", "command")}
    set_params(repo, TINY)
    set_params(
        repo,
        {
            "generators": {},
            "synthesize": {
                "methods": {"tiny": 0.5, "command": 0.5},
                "allow_external_model": True,  # the command's model has no record
                "plugins": {"tiny": {"noise": 6}},
                "command": {"cmd": cmd, "batch": 8},
            },
            "train": {"variants": variants},
        },
    )
    commit_all(repo, "plugin build")
    run([sys.executable, "-m", "dvc", "repro"], repo, env={"PYTHONPATH": str(plugin)})
    return repo


def test_a_plugin_gets_its_own_evidence_row(built):
    summary = json.loads((built / "metrics/summary.json").read_text())
    assert {"balanced_tiny", "balanced_command"} <= set(summary["variants"])
    rows = manifest.read(built / "data/synthesized/manifest.csv")
    assert {"tiny", "command"} <= set(rows.origin)
    detail = json.loads(rows[rows.origin == "tiny"].detail.iloc[0])
    assert detail["version"] == "0.3.1" and detail["options"] == {"noise": 6}
    assert json.loads(detail["key"])["version"] == "0.3.1"
    assert json.loads(rows[rows.origin == "command"].detail.iloc[0])["seconds"] > 0
    speed = json.loads((built / "metrics/synthesis_speed.json").read_text())["per_method"]
    assert speed["tiny"]["images"] > 0 and speed["tiny"]["seconds_per_image"] > 0
    assert speed["tiny"]["dollars_per_image"] == 0.001


def test_plan_estimates_with_the_measured_speed(built, monkeypatch):
    monkeypatch.chdir(built)
    result = CliRunner().invoke(main, ["plan"])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"tiny: \d+ images x [\d.e-]+ s \(measured\), \$0\.001 per image \(measured\)", result.output
    )
    assert re.search(r"command: \d+ images x [\d.e-]+ s \(measured\)", result.output)
    # a method the last run did not measure: the typed-in numbers, said so
    params = built / "params.yaml"
    set_params(
        built, {"synthesize": {"methods": {"tiny": 1.0}}, "count": {"seconds_per_image": {"tiny": 2.0}}}
    )
    (built / "metrics/synthesis_speed.json").unlink()
    result = CliRunner().invoke(main, ["plan", "--params", str(params), "--format", "json"])
    assert result.exit_code == 0, result.output
    per = json.loads(result.output)["estimate"]["per_method"]["tiny"]
    assert per["seconds_per_image"] == 2.0 and per["seconds_from"] == "from params"

"""The `rebalance` command line's common edges: --version, -C/--repo on every command that reads
the repository, one --format vocabulary, one-line errors."""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest
from click.testing import CliRunner
from conftest import copy_repo

from rebalance.cli import main

READS_THE_REPOSITORY = ["plan", "release", "releases", "compare", "review", "reader-study", "annotate"]
FORMATTED = ["plan", "releases", "compare"]


def test_version_names_the_libraries_that_decide_outputs():
    out = CliRunner().invoke(main, ["--version"]).output
    assert out.splitlines()[0].startswith(f"rebalance {metadata.version('rebalance')} (Python ")
    for name in ("torch", "diffusers", "transformers", "peft", "pydicom", "pylibjpeg-openjpeg", "numpy"):
        assert re.search(rf"^  {re.escape(name)} {re.escape(metadata.version(name))}$", out, re.M), name


@pytest.mark.parametrize("command", READS_THE_REPOSITORY)
def test_every_command_that_reads_the_repository_takes_repo(command):
    out = CliRunner().invoke(main, [command, "--help"]).output
    assert "-C, --repo TEXT" in out


@pytest.mark.parametrize("command", FORMATTED)
def test_one_format_vocabulary(command):
    out = CliRunner().invoke(main, [command, "--help"]).output
    assert "--format [md|table|json]" in out


def test_plan_runs_in_the_repository_given_by_repo(tmp_path, monkeypatch):
    repo = copy_repo(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no params.yaml here
    result = CliRunner().invoke(main, ["plan", "-C", str(repo), "--format", "json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert set(counts["target"]) == {"level0", "level1", "level2", "level3"}
    monkeypatch.chdir(elsewhere)
    missing = CliRunner().invoke(main, ["plan", "-C", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1
    assert (
        missing.output.strip()
        == f"error: {tmp_path / 'nowhere'}: not a folder; give -C/--repo the repository's folder"
    )

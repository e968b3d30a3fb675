"""count.max_synthetic_ratio: synthetic images planned per real train image, per class, in
metrics/counts.json, `rebalance plan`'s table and the data card; a warning above the limit."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from click.testing import CliRunner
from conftest import deep_update
from imagegen import make_folder, stage, workdir

from rebalance import config
from rebalance.cli import main
from rebalance.registry import card, gate

WARNING = "warning: class b: 24.00 synthetic images per real train image"


def plan_json(work) -> dict:
    result = CliRunner().invoke(main, ["plan", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def set_count(work, **count) -> None:
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(deep_update(yaml.safe_load(path.read_text()), {"count": count})))


def test_a_class_planned_at_24_to_1_is_a_warning(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_folder(src, {"a": 60, "b": 12})
    work = workdir(tmp_path, src, ["a", "b"])
    monkeypatch.chdir(work)
    train = plan_json(work)["splits"]["train"]
    set_count(work, target={"strategy": "fixed", "n": 25 * train["b"]})  # b: 24 synthetic per real
    counts = plan_json(work)
    assert counts["synthetic_ratio"] == {
        "a": round((25 * train["b"] - train["a"]) / train["a"], 2),
        "b": 24.0,
    }
    assert counts["synthetic_ratio"]["a"] <= 10  # a stays under the limit: no warning for it

    out = CliRunner().invoke(main, ["plan"]).output
    rows = [line.replace(" ", "") for line in out.splitlines()]
    assert f"|b|{train['b']}|{24 * train['b']}|{24 * train['b']}|{25 * train['b']}|24.00|" in rows
    assert "synthetic per real" in out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(WARNING)
    assert "above count.max_synthetic_ratio 10" in warnings[0]

    stage(work, "raw")
    printed = stage(work, "count").stdout
    written = json.loads((work / "metrics/counts.json").read_text())
    assert written["synthetic_ratio"] == counts["synthetic_ratio"] and WARNING in printed

    params = config.load(work / "params.yaml")
    assert [f"warning: {w}" for w in gate.warnings(params, written)] == warnings
    fused = pd.DataFrame({"split": ["train", "val", "test"] * 2, "label": ["a"] * 3 + ["b"] * 3})
    shown = "\n".join(card._balance(written, fused, ["a", "b"], params.count.max_synthetic_ratio))
    assert "synthetic per real" in shown and "| 24.00" in shown
    assert "Warning: class b: 24.00 synthetic images per real train image" in shown

    set_count(work, max_synthetic_ratio=30)
    out = CliRunner().invoke(main, ["plan"]).output
    assert "24.00" in out and "warning:" not in out
    assert gate.warnings(config.load(work / "params.yaml"), written) == []
    assert "Warning:" not in "\n".join(card._balance(written, fused, ["a", "b"], 30.0))


def test_a_plan_under_the_limit_warns_nothing(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_folder(src, {"a": 30, "b": 12})
    work = workdir(tmp_path, src, ["a", "b"])  # target: the largest class, b under 10:1
    monkeypatch.chdir(work)
    counts = plan_json(work)
    assert 0 < counts["synthetic_ratio"]["b"] < 10 and counts["synthetic_ratio"]["a"] == 0
    out = CliRunner().invoke(main, ["plan"]).output
    assert "synthetic per real" in out and "warning:" not in out

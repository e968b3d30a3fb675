"""The numbers README.md quotes are generated from the committed metrics (rebalance/readme.py):
the README's generated blocks equal what the metrics give today."""

from __future__ import annotations

import json
import shutil

from conftest import REPO

from rebalance import readme


def test_the_readmes_generated_blocks_match_the_committed_metrics():
    text = (REPO / "README.md").read_text()
    assert "<!-- generated:evidence -->" in text
    assert readme.render(text, REPO) == text, "README.md is stale: run `python -m rebalance.readme`"


def test_a_changed_metric_makes_the_readme_stale(tmp_path):
    for name in ("summary.json", "eval.json", "synthesis_quality.json"):
        (tmp_path / "metrics").mkdir(exist_ok=True)
        shutil.copy(REPO / "metrics" / name, tmp_path / "metrics" / name)
    text = (REPO / "README.md").read_text()
    assert readme.render(text, tmp_path) == text
    ev = json.loads((tmp_path / "metrics/eval.json").read_text())
    ev["balanced_accuracy"] += 0.01
    (tmp_path / "metrics/eval.json").write_text(json.dumps(ev))
    assert readme.render(text, tmp_path) != text

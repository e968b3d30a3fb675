"""README.md is short, generated where it quotes the build, and points only at files that exist:
its blocks (rebalance/readme.py) equal what the committed metrics, params and dvc.yaml give today."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from conftest import REPO

from rebalance import readme

TEXT = (REPO / "README.md").read_text()


def test_the_readmes_generated_blocks_match_the_committed_build():
    for name in ("evidence", "gate", "synthesis", "dag"):
        assert f"<!-- generated:{name} -->" in TEXT, name
    assert readme.render(TEXT, REPO) == TEXT, "README.md is stale: run `python -m rebalance.readme`"


def _copy_build(tmp_path):
    (tmp_path / "metrics").mkdir()
    for name in ("summary.json", "eval.json", "synthesis_quality.json"):
        shutil.copy(REPO / "metrics" / name, tmp_path / "metrics" / name)
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    assert readme.render(TEXT, tmp_path) == TEXT


def test_a_changed_metric_makes_the_readme_stale(tmp_path):
    _copy_build(tmp_path)
    ev = json.loads((tmp_path / "metrics/eval.json").read_text())
    ev["balanced_accuracy"] += 0.01
    (tmp_path / "metrics/eval.json").write_text(json.dumps(ev))
    assert readme.render(TEXT, tmp_path) != TEXT


def test_a_changed_gate_or_stage_graph_makes_the_readme_stale(tmp_path):
    _copy_build(tmp_path)
    params = (tmp_path / "params.yaml").read_text()
    assert "max_empty_share: 0.1 " in params
    (tmp_path / "params.yaml").write_text(params.replace("max_empty_share: 0.1 ", "max_empty_share: 0.95 "))
    assert readme.render(TEXT, tmp_path) != TEXT
    (tmp_path / "params.yaml").write_text(params)
    dvc_yaml = (tmp_path / "dvc.yaml").read_text()
    assert "\n  detect:\n" in dvc_yaml
    (tmp_path / "dvc.yaml").write_text(dvc_yaml.replace("\n  detect:\n", "\n  detect_lesions:\n"))
    assert readme.render(TEXT, tmp_path) != TEXT


def test_the_readme_reads_in_minutes_and_names_no_process():
    assert len(TEXT.splitlines()) <= 250
    for word in (r"sessions?", r"issues?", r"seed 00\d", r"the bar", r"the guide"):
        assert not re.search(rf"\b{word}\b", TEXT, re.I), word


def test_every_picture_and_file_the_readme_links_exists():
    targets = re.findall(r"\]\(([^)#\s]+)\)", TEXT)
    local = [t for t in targets if not re.match(r"https?://", t)]
    assert "docs/img/balance.png" in local and "metrics/plots/evidence.png" in local
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_pictures_drawn_from_metrics_are_current(tmp_path):
    """docs/img/balance.png and confusion.png redrawn from the committed metrics give the same bytes;
    a changed count draws another picture."""
    from rebalance import figures

    for name in ("counts.json", "fused.json", "summary.json"):
        (tmp_path / "metrics").mkdir(exist_ok=True)
        shutil.copy(REPO / "metrics" / name, tmp_path / "metrics" / name)
    shutil.copytree(REPO / "metrics/plots/confusion", tmp_path / "metrics/plots/confusion")
    for draw in (figures.balance, figures.confusion):
        path = draw(tmp_path)
        assert path.read_bytes() == (REPO / figures.IMG / path.name).read_bytes(), f"{path.name}: stale"
    counts = json.loads((tmp_path / "metrics/counts.json").read_text())
    counts["splits"]["train"]["level3"] += 40
    (tmp_path / "metrics/counts.json").write_text(json.dumps(counts))
    assert figures.balance(tmp_path).read_bytes() != (REPO / figures.IMG / "balance.png").read_bytes()

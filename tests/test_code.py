"""Cache keys that cannot go stale: a method's key follows the code it runs, not a hand-bumped version."""

from __future__ import annotations

import shutil

from conftest import REPO

from rebalance.core.code import closure, code_hash


def copy_package(tmp_path):
    for package in ("rebalance", "stages"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_closure_follows_imports_lazy_ones_included():
    files = {p.as_posix() for p in closure("stages.synthesize")}
    for module in ("synth/lesion_edit.py", "synth/blend.py", "synth/diffusion_sd.py", "core/manifest.py"):
        assert f"rebalance/{module}" in files
    assert "stages/synthesize.py" in files
    assert "rebalance/learn/metrics.py" not in files and "stages/evaluate.py" not in files


def test_code_hash_follows_what_the_code_does_not_how_it_reads(tmp_path):
    root = copy_package(tmp_path)
    before = code_hash("rebalance.synth.lesion_edit", root)
    with open(root / "rebalance/learn/metrics.py", "a") as f:  # not imported by lesion_edit
        f.write("# an unrelated change\n")
    code_hash.cache_clear()
    assert code_hash("rebalance.synth.lesion_edit", root) == before
    blend = root / "rebalance/synth/blend.py"
    text = blend.read_text()
    blend.write_text(
        text.replace("def _solver(", "def _solver(  # a comment\n    ", 1).replace('"""', '"""Edited. ', 1)
    )
    code_hash.cache_clear()
    assert code_hash("rebalance.synth.lesion_edit", root) == before  # comments and docstrings: the same code
    blend.write_text(text.replace("half + 1", "half + 2", 1))
    code_hash.cache_clear()
    assert code_hash("rebalance.synth.lesion_edit", root) != before  # one changed expression

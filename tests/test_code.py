"""Cache keys that cannot go stale: a method's key follows the code it runs, not a hand-bumped version."""

from __future__ import annotations

import shutil

from conftest import REPO

from stages.core.code import closure, code_hash


def copy_package(tmp_path):
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_closure_follows_imports_lazy_ones_included():
    files = {p.as_posix() for p in closure("stages.synthesize")}
    for module in ("synth/lesion_edit.py", "synth/blend.py", "synth/diffusion_sd.py", "core/manifest.py"):
        assert f"stages/{module}" in files
    assert "stages/learn/metrics.py" not in files and "stages/evaluate.py" not in files


def test_code_hash_changes_with_one_line_of_an_imported_helper(tmp_path):
    root = copy_package(tmp_path)
    before = code_hash("stages.synth.lesion_edit", root)
    with open(root / "stages/learn/metrics.py", "a") as f:  # not imported by lesion_edit
        f.write("# an unrelated change\n")
    code_hash.cache_clear()
    assert code_hash("stages.synth.lesion_edit", root) == before
    blend = root / "stages/synth/blend.py"
    blend.write_text(blend.read_text().replace("def disk(", "def disk(  # one changed line\n    ", 1))
    code_hash.cache_clear()
    assert code_hash("stages.synth.lesion_edit", root) != before

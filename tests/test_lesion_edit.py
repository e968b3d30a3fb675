"""lesion_edit: locality, re-detection in the target bin, determinism, incremental reuse, errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, commit_all, run, set_params

from rebalance import config
from rebalance.config import Params
from rebalance.config.synth import LesionEdit
from rebalance.core import code, manifest
from rebalance.core.errors import RebalanceError
from rebalance.core.hashing import sha256_file
from rebalance.core.images import load_array
from rebalance.dataset import demo, grading
from rebalance.synth import blend, detector, lesion_edit, overlay
from rebalance.synth.base import Context
from rebalance.synth.reuse import fill

PARAMS = config.load(REPO / "params.yaml")


@pytest.fixture(scope="module")
def demo_train(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A tiny demo dataset (10 images per grade), all of it the train split."""
    raw = tmp_path_factory.mktemp("raw")
    classes = PARAMS.dataset.classes
    rows = demo.write(raw, classes, grading.lesion_bins(PARAMS), 0.01, 128, 3)
    train = pd.DataFrame(
        [
            manifest.row(
                path=r["path"],
                split="train",
                label=r["label"],
                origin="real",
                source=r["path"],
                root=r["path"],
                sha256=sha256_file(raw / r["path"]),
            )
            for r in rows
        ]
    )
    return raw, train


def make_ctx(demo_train, out: Path, params: Params | None = None) -> Context:
    raw, train = demo_train
    return Context(params=params or PARAMS.model_copy(deep=True), train_real=train, raw_dir=raw, out_dir=out)


def editor(demo_train, out: Path, params: Params | None = None) -> lesion_edit.LesionEditor:
    return lesion_edit.LesionEditor(make_ctx(demo_train, out, params))


@pytest.fixture(scope="module")
def level3(demo_train, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    ctx = make_ctx(demo_train, out)
    return ctx, lesion_edit.LesionEditor(ctx).generate("level3", [0, 1, 2, 3])


def disks_mask(shape, disks) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    for y, x, r in disks:
        mask |= np.hypot(yy - y, xx - x) <= r
    return mask


def test_locality_outside_edit_mask_is_byte_identical(level3):
    ctx, rows = level3
    for r in rows:
        src = load_array(ctx.raw_dir / r["source"])
        out = load_array(ctx.out_dir / r["path"])
        mask = disks_mask(src.shape[:2], json.loads(r["detail"])["lesions"])
        assert np.array_equal(out[~mask], src[~mask]), r["path"]
        assert (out[mask] != src[mask]).any()  # something was edited inside
        assert mask.mean() < 0.9


def test_redetected_count_lands_in_target_bin(level3):
    ctx, rows = level3
    lo, hi = grading.lesion_bins(ctx.params)["level3"]
    for r in rows:
        d = json.loads(r["detail"])
        n = detector.count(load_array(ctx.out_dir / r["path"]))
        assert lo <= n <= hi and n == d["detected_after"]
        assert d["added"] >= lo - d["detected_before"] - 5  # lesions really were added


def test_sources_are_lower_grade_train_images_with_cluster(level3):
    ctx, rows = level3
    train = ctx.train_real.set_index("path")
    for r in rows:
        assert train.loc[r["source"], "label"] in ("level0", "level1", "level2")
        assert r["root"] == r["source"] and r["cluster"] != ""
    assert len({r["source"] for r in rows}) == len(rows)  # spread: no source twice in 4


def test_determinism_byte_identical(demo_train, level3, tmp_path):
    _, rows = level3
    again = lesion_edit.LesionEditor(make_ctx(demo_train, tmp_path)).generate("level3", [0, 1, 2, 3])
    assert [r["sha256"] for r in again] == [r["sha256"] for r in rows]
    assert again == rows


def test_incremental_reuses_unchanged_images(demo_train, tmp_path):
    first = tmp_path / "a"
    rows, reused = fill(editor(demo_train, first), "lesion_edit", "level2", 3, {}, first, first)
    assert reused == 0 and all(json.loads(r["detail"])["key"] for r in rows)
    old = {r["path"]: r for r in rows}
    second = tmp_path / "b"
    rows2, reused2 = fill(editor(demo_train, second), "lesion_edit", "level2", 5, old, first, second)
    assert reused2 == 3 and len(rows2) == 5
    for r in rows:
        assert (second / r["path"]).stat().st_ino == (first / r["path"]).stat().st_ino  # linked
    # a changed method parameter changes every key: nothing reused
    params = PARAMS.model_copy(deep=True)
    params.synthesize.lesion_edit.bin_margin = 0.2
    third = tmp_path / "c"
    _, reused3 = fill(editor(demo_train, third, params), "lesion_edit", "level2", 3, old, first, third)
    assert reused3 == 0


def test_a_comment_in_the_blend_module_reuses_every_image(demo_train, tmp_path, monkeypatch):
    """The cache key follows what the code does: a comment or docstring edit in the blend module
    (imported by lesion_edit) reuses every image; a changed expression regenerates them all."""
    root = tmp_path / "code"
    shutil.copytree(REPO / "rebalance", root / "rebalance", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(lesion_edit, "code_hash", lambda module: code.code_hash(module, root))
    blend_file = root / "rebalance/synth/blend.py"

    def run_in(out: Path, old: dict) -> tuple[list[dict], int]:
        code.code_hash.cache_clear()
        return fill(editor(demo_train, out), "lesion_edit", "level2", 3, old, tmp_path / "a", out)

    rows, _ = run_in(tmp_path / "a", {})
    old = {r["path"]: r for r in rows}
    text = blend_file.read_text()
    blend_file.write_text(text.replace('"""', '"""Edited. ', 1) + "\n# a new comment\n")
    assert run_in(tmp_path / "b", old)[1] == 3  # every image reused
    blend_file.write_text(text + "\nPADDING = 1 + 1\n")  # one new statement
    assert run_in(tmp_path / "c", old)[1] == 0  # every image made again


def test_lowest_grade_deficit_uses_equal_grade_sources(demo_train, tmp_path):
    ctx = make_ctx(demo_train, tmp_path)
    rows = lesion_edit.LesionEditor(ctx).generate("level0", [0, 1])
    for r in rows:
        assert json.loads(r["detail"])["source_label"] == "level0"
        assert detector.count(load_array(tmp_path / r["path"])) <= 5


def test_ungraded_dataset_gets_clear_error(demo_train, tmp_path):
    params = PARAMS.model_copy(deep=True)
    params.dataset.lesion_bins = None  # past the params rules: the method's own refusal
    with pytest.raises(RebalanceError, match="diffusion") as err:
        lesion_edit.LesionEditor(make_ctx(demo_train, tmp_path, params)).generate("level3", [0])
    assert "\n" not in str(err.value)


def test_poisson_blend_refuses_patches_outside_the_image():
    dest = np.full((20, 20, 3), 120.0, dtype=np.float32)
    patch = np.full((7, 7, 3), 90.0, dtype=np.float32)
    with pytest.raises(ValueError):
        blend.poisson_log(dest, patch, blend.disk(2.5, 3), -2, 5)
    blend.poisson_log(dest, patch, blend.disk(2.5, 3), 0, 0)  # at the corner, inside: fine
    assert np.allclose(dest, 120.0, atol=1e-3)  # flat patch on flat skin: nothing shows


def test_target_range_respects_bins():
    cfg = LesionEdit()
    assert overlay.target_range((21, 50), 3, cfg) == (25, 46)
    assert overlay.target_range((0, 5), 5, cfg) is None
    lo, hi = overlay.target_range((51, float("inf")), 10, cfg)
    assert 51 <= lo <= hi <= 80


@pytest.mark.slow
def test_pipeline_reuses_and_handles_lowest_grade_deficit(repo):
    """dvc repro with strategy `max` (a level0 deficit); a forced re-run reuses every image."""
    set_params(
        repo, {"count": {"target": {"strategy": "max"}}, "synthesize": {"methods": {"lesion_edit": 1.0}}}
    )
    commit_all(repo)
    assert yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["synthesize"]["outs"][0][
        "data/synthesized"
    ]["persist"]
    out = run([sys.executable, "-m", "dvc", "repro", "synthesize", "detect"], repo).stdout
    assert "level0" in out
    first = (repo / "data/synthesized/manifest.csv").read_bytes()
    counts = json.loads((repo / "metrics/counts.json").read_text())
    assert counts["generated"]["level0"]["lesion_edit"] > 0
    assert (repo / "metrics/plots/lesion_edit_grid.png").stat().st_size > 0
    det = json.loads((repo / "metrics/detector.json").read_text())
    assert det["measured"] and det["train"]["grade_agreement"] >= 0.7
    again = run([sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "synthesize"], repo).stdout
    assert " 0 generated" in again and "reused" in again
    assert (repo / "data/synthesized/manifest.csv").read_bytes() == first
    # one new statement in a helper the method imports: every lesion edit is made again
    blend = repo / "rebalance/synth/blend.py"
    blend.write_text(blend.read_text() + "\nPADDING = 1 + 1\n")
    changed = run([sys.executable, "-m", "dvc", "repro", "synthesize"], repo).stdout
    reuse_lines = [line for line in changed.splitlines() if " reused, " in line]
    assert "Running stage 'synthesize'" in changed and reuse_lines, changed
    assert all("(0 reused" in line for line in reuse_lines), changed  # every edit made again


def test_the_grid_says_why_it_is_empty_when_no_lesion_edit_ran():
    """A run without lesion edits draws a tile with a line of text, not a blank square."""
    diffusion_only = [{"label": "level0", "origin": "diffusion", "path": "x.png"}]
    tile = lesion_edit.sample_grid(diffusion_only, None, None, ["level0"])
    assert tile.ndim == 3 and tile.shape[1] > 4 * tile.shape[0]  # a line, wider than tall
    assert (tile < 128).any() and (tile == 255).mean() > 0.5  # dark text on white

"""Shared fixtures: a throw-away copy of the repository with tiny params, and a CLI runner."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from rebalance import config
from rebalance.config import Params

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

# Modules that run whole pipelines, longest first. pytest-xdist (`--dist loadfile
# --no-loadscope-reorder`, pyproject) hands modules out in collection order as workers free up, so
# putting these first keeps a long module from starting last (longest-first scheduling).
LONGEST_FIRST = [
    "test_registry", "test_evidence", "test_real_sources", "test_plugins", "test_review", "test_pipeline",
    "test_open_release", "test_shards", "test_lesion_edit", "test_launch",
]  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: the rest keep their order


# A configuration small enough for a test to run the whole pipeline in about a minute.
TINY = {
    "raw": {"demo": {"scale": 0.05}},
    "count": {"target": {"strategy": "fixed", "n": 16}},
    "train": {
        "steps": 8,
        "image_size": 32,
        "width": 8,
        "seeds": [0],
        "variants": {  # the headline and the three baselines of the paired comparison
            "real": {"data": "real", "augment": False, "weighted": False},
            "real_weighted": {"data": "real", "augment": False, "weighted": True},
            "real_oversampled": {"data": "real_oversampled", "augment": False, "weighted": False},
            "balanced": {"data": "balanced", "augment": False, "weighted": False},
            # one row per generator of the default methods
            "balanced_lesion_edit": {"data": "balanced", "method": "lesion_edit"},
            "balanced_diffusion": {"data": "balanced", "method": "diffusion"},
            # curation's control: every slot's first try (the filter is off here: balanced's images)
            "balanced_unfiltered": {"data": "balanced_unfiltered", "augment": False, "weighted": False},
        },
    },
    "evaluate": {"bootstrap": 50},
    # a 16 px diffusion UNet trained for a few seconds, few sampler steps, a short assess classifier
    "generators": {
        "diffusion": {
            "resolution": 16,
            "channels": [16, 32],
            "steps": 40,
            "batch_size": 16,
            "attention": False,
        }
    },
    # every image judged, none rejected: a judge trained for two epochs would reject at random
    "synthesize": {"diffusion": {"steps": 4}, "filter": None},
    "assess": {"epochs": 2},
    # a two-epoch judge says nothing of image quality: the synthetic-quality gate has its own tests
    "release": {"gate": {"synthetic": None}},
    # xdist runs one test module per core: one torch thread per pipeline, not every core each
    # (two tiny builds at once on 2 cores, measured: 139 s with threads null, 104 s with 1)
    "compute": {"threads": 1},
}


# Builds that check something other than the evidence train fewer models: the headline, the
# baseline `real` and one generator's row.
FEW_VARIANTS = {k: TINY["train"]["variants"][k] for k in ("real", "balanced", "balanced_diffusion")}

# Mappings that are a choice, not defaults: an update replaces them whole (method shares must
# sum to 1; a variant list is the set of models to train; generators, the set of generators).
REPLACED_WHOLE = {"methods", "variants", "generators"}


def deep_update(base: dict, updates: dict) -> dict:
    """`updates` merged into params `base`; then, when `base` names synthesize.methods, the
    per-generator variants of methods no longer among them are dropped, as a user changing methods
    drops them."""
    _merge(base, updates)
    methods = base.get("synthesize", {}).get("methods")
    variants = base.get("train", {}).get("variants", {}) if methods is not None else {}
    for name in [n for n, v in variants.items() if v.get("method") not in (None, *(methods or ()))]:
        del variants[name]
    return base


def _merge(base: dict, updates: dict) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key not in REPLACED_WHOLE:
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def make_params(updates: dict) -> Params:
    """This repository's params.yaml with `updates` merged in, validated, every default filled."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return config.validate(deep_update(base, updates))


def folder_params(classes: list[str], synthesize: dict | None = None) -> Params:
    """Validated params of an ungraded folder dataset with `classes` (for method unit tests)."""
    return make_params(
        {
            "dataset": {"name": "t", "classes": classes, "lesion_bins": None},
            "raw": {"source": "images"},
            "synthesize": {"methods": {"diffusion": 1.0}, **(synthesize or {})},
        }
    )


def set_params(repo: Path, updates: dict) -> dict:
    """Merge `updates` into repo/params.yaml (nested keys merge; lists and scalars replace)."""
    path = repo / "params.yaml"
    params = deep_update(yaml.safe_load(path.read_text()), updates)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def run(
    cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a command; on unexpected failure show its output in the assertion message."""
    full_env = {**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_repo(dst: Path) -> Path:
    """Copy the project's tracked and untracked-but-not-ignored files into a fresh git repo."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file() and not name.startswith(("data/", "dvclive/", "metrics/")) and name != "dvc.lock":
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    run(["git", "init", "-q", "-b", "main"], dst)
    run(["git", "config", "user.email", "test@example.com"], dst)
    run(["git", "config", "user.name", "test"], dst)
    return dst


def commit_all(repo: Path, message: str = "test") -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)


def copy_built(built_repo: Path, dst: Path) -> Path:
    """A private copy of the shared tiny build (workspace, git history, DVC cache), to modify."""
    shutil.copytree(built_repo, dst, symlinks=True)
    return dst


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh copy of this repository (no data, no metrics) with the tiny params, committed."""
    dst = copy_repo(tmp_path / "repo")
    set_params(dst, TINY)
    commit_all(dst, "tiny copy")
    return dst


def shared_build(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A repository made once per test run by `make(dst)` and shared read-only (copy it to change
    it). Under pytest-xdist the workers share it: the first to ask makes it under a file lock in
    the run's common temporary folder, the others wait for it and reuse it."""
    from filelock import FileLock

    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # common to every worker of this run
    dst, done = root / name / "repo", root / name / "done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(dst.parent, ignore_errors=True)
            make(dst)
            done.touch()
    return dst


def _build_tiny(dst: Path) -> None:
    copy_repo(dst)
    set_params(dst, TINY)
    commit_all(dst, "tiny copy")
    run([sys.executable, "-m", "dvc", "repro"], dst)


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny `dvc repro` shared by the read-only end-to-end checks (do not modify it)."""
    return shared_build(tmp_path_factory, "built", _build_tiny)

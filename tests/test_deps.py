"""dvc.yaml deps match the code: every project module a stage imports (transitively) is a dep.

Otherwise a fix in a helper does not re-run the stage, and dvc.lock certifies outputs of older code.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import yaml
from conftest import REPO

ENTRY_POINTS = (
    "raw", "count", "detect", "train_diffusion", "synthesize", "assess", "flip", "fuse", "train", "evaluate",
)  # fmt: skip


def module_file(module: str) -> Path | None:
    """The file of a `stages...` module (package: its __init__.py), relative to the repo."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (REPO / candidate).is_file():
            return candidate
    return None


def imported_modules(file: Path) -> set[str]:
    """`stages...` modules a file imports (at any depth of the file, lazy imports included)."""
    tree = ast.parse((REPO / file).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "stages"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "stages":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
    return {m for m in found if module_file(m) is not None}


def with_parents(module: str) -> set[str]:
    """A module and the packages above it (Python runs each package's __init__ first)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(module: str) -> set[Path]:
    """Files of `module` and of every project module it imports, transitively."""
    todo, seen = list(with_parents(module)), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for imported in imported_modules(module_file(m)):
            todo += list(with_parents(imported) - seen)
    return {module_file(m) for m in seen}


def stage_code_deps(stage: dict) -> set[Path]:
    """The files a dvc.yaml stage's deps cover (a folder covers everything under it)."""
    covered: set[Path] = set()
    for dep in stage.get("deps", []):
        dep = Path(dep)
        if (REPO / dep).is_dir():
            covered |= {p.relative_to(REPO) for p in (REPO / dep).rglob("*.py")}
        else:
            covered.add(dep)
    return covered


def missing_deps(dvc_yaml: dict) -> dict[str, list[str]]:
    """Per stage: project files its code imports that its deps do not list."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        stage = stage.get("do", stage)  # foreach stages
        module = stage["cmd"].split()[2]  # python -m stages.<name> ...
        missing = closure(module) - stage_code_deps(stage)
        if missing:
            out[name] = sorted(p.as_posix() for p in missing)
    return out


def load_dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_lists_the_code_it_imports():
    missing = missing_deps(load_dvc_yaml())
    assert not missing, f"dvc.yaml deps lack imported modules (add them): {missing}"


def test_the_check_fails_when_a_dep_is_removed():
    for stage_name, dep in (("count", "stages/dataset/plan.py"), ("synthesize", "stages/synth/blend.py")):
        dvc_yaml = copy.deepcopy(load_dvc_yaml())
        deps = dvc_yaml["stages"][stage_name]["deps"]
        deps.remove(dep)
        assert missing_deps(dvc_yaml) == {stage_name: [dep]}
    dvc_yaml = copy.deepcopy(load_dvc_yaml())
    dvc_yaml["stages"]["fuse"]["deps"].remove("stages/core")  # a folder dep covers its modules
    assert "stages/core/manifest.py" in missing_deps(dvc_yaml)["fuse"]


def test_stages_hold_only_entry_points_and_never_import_each_other():
    top = sorted(p.stem for p in (REPO / "stages").glob("*.py"))
    assert top == sorted([*ENTRY_POINTS, "__init__", "cli"])
    for name in ENTRY_POINTS:
        others = {Path("stages", f"{o}.py") for o in ENTRY_POINTS if o != name}
        assert not closure(f"stages.{name}") & others, f"stage {name} imports another stage"


def test_no_module_is_over_300_lines():
    long = {p.relative_to(REPO).as_posix(): n for p in (REPO / "stages").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}  # fmt: skip
    assert not long, long

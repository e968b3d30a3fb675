"""dvc.yaml deps match the code: every project module a stage imports (transitively) is a dep.

Otherwise a fix in a helper does not re-run the stage, and dvc.lock certifies outputs of older code.
A file without code (a package's `__init__.py` that holds only its docstring) changes no outcome
and need not be listed.
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import yaml
from conftest import REPO

from rebalance.config.synth import Generators
from rebalance.core.code import closure

ENTRY_POINTS = (
    "scan", "raw", "count", "detect", "train_diffusion", "train_gan", "train_sd_lora", "judge", "synthesize",
    "assess", "flip", "fuse", "train", "evaluate", "document",
)  # fmt: skip
FOREACH_KEYS = {  # a family's every member (generators: each that params may name)
    "${generators}": list(Generators.model_fields),
    "${train.variants}": ["balanced"],
}


def instances(name: str, stage: dict):
    """(name, definition) of a stage, or of each member of a foreach family, `${key}` filled in."""
    if "foreach" not in stage:
        yield name, stage
        return
    for key in FOREACH_KEYS[stage["foreach"]]:
        yield f"{name}@{key}", json.loads(json.dumps(stage["do"]).replace("${key}", key))


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


def has_code(file: Path) -> bool:
    """More than a docstring (and `from __future__` imports, and a module `__getattr__`: lazy
    exports, PEP 562, run only when code asks the package for a name it lacks, which no stage does)."""
    body = ast.parse((REPO / file).read_text()).body
    docstring = lambda n: isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)  # noqa: E731
    future = lambda n: isinstance(n, ast.ImportFrom) and n.module == "__future__"  # noqa: E731
    lazy = lambda n: isinstance(n, ast.FunctionDef) and n.name == "__getattr__"  # noqa: E731
    return any(not (docstring(n) or future(n) or lazy(n)) for n in body)


def missing_deps(dvc_yaml: dict) -> dict[str, list[str]]:
    """Per stage: project files with code that its code imports and its deps do not list."""
    out = {}
    for family, definition in dvc_yaml["stages"].items():
        for name, stage in instances(family, definition):
            module = stage["cmd"].split()[2]  # python -m stages.<name> ...
            missing = {f for f in closure(module) - stage_code_deps(stage) if has_code(f)}
            if missing:
                out[name] = sorted(p.as_posix() for p in missing)
    return out


def load_dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_lists_the_code_it_imports():
    missing = missing_deps(load_dvc_yaml())
    assert not missing, f"dvc.yaml deps lack imported modules (add them): {missing}"


def test_the_check_fails_when_a_dep_is_removed():
    for stage_name, dep in (
        ("flip", "rebalance/dataset/flips.py"),
        ("detect", "rebalance/synth/detector.py"),
    ):
        dvc_yaml = copy.deepcopy(load_dvc_yaml())
        deps = dvc_yaml["stages"][stage_name]["deps"]
        deps.remove(dep)
        assert missing_deps(dvc_yaml) == {stage_name: [dep]}
    dvc_yaml = copy.deepcopy(load_dvc_yaml())
    dvc_yaml["stages"]["fuse"]["deps"].remove("rebalance/core")  # a folder dep covers its modules
    assert "rebalance/core/manifest.py" in missing_deps(dvc_yaml)["fuse"]


def test_the_library_never_imports_a_stage_script():
    for module in (REPO / "rebalance").rglob("*.py"):
        rel = module.relative_to(REPO)
        name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        assert not {p for p in closure(name) if p.parts[0] == "stages"}, f"{rel} imports a stage script"


def test_stages_hold_only_entry_points_and_never_import_each_other():
    top = sorted(p.stem for p in (REPO / "stages").glob("*.py"))
    assert top == sorted([*ENTRY_POINTS, "__init__"])
    for name in ENTRY_POINTS:
        others = {Path("stages", f"{o}.py") for o in ENTRY_POINTS if o != name}
        assert not closure(f"stages.{name}") & others, f"stage {name} imports another stage"


def test_every_trained_generator_has_its_stage_script_and_core_module():
    for name in Generators.model_fields:
        assert (REPO / f"stages/train_{name}.py").is_file()
        assert (REPO / f"rebalance/synth/{name}_core.py").is_file()


def test_bytecode_beside_the_code_is_no_change_to_a_stage(tmp_path):
    """Python writes __pycache__ into the code folders the stages depend on: DVC must not count it,
    or every run would find every stage's code changed."""
    from dvc.repo import Repo

    ignore = Repo(str(REPO)).dvcignore
    for folder in ("rebalance/config", "rebalance/core", "stages"):
        pyc = REPO / folder / "__pycache__" / "x.cpython-311.pyc"
        assert ignore.is_ignored_file(str(pyc)), folder
    assert not ignore.is_ignored_file(str(REPO / "rebalance/config/schema.py"))

"""What a piece of code is: the project modules it imports, and one hash of all their source.

Used for cache keys that cannot go stale (a method's generated images are reused only while the
code that made them does the same: comments, docstrings and layout aside) and by the test that
dvc.yaml deps match the imports.
"""

from __future__ import annotations

import ast
import functools
from importlib import metadata
from pathlib import Path

from rebalance.core.hashing import sha256_text

ROOT = Path(__file__).resolve().parents[2]  # the repository (the folder holding rebalance/ and stages/)
PACKAGES = ("rebalance", "stages")  # the library and the stage scripts


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of a project module (a package: its __init__.py), relative to `root`."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def imported_modules(file: Path, root: Path = ROOT) -> set[str]:
    """Project modules a file imports, at any depth of the file (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((root / file).read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from package import module`
    return {m for m in found if module_file(m, root) is not None}


def _with_parents(module: str) -> set[str]:
    """A module and the packages above it (Python runs each package's __init__ first)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(module: str, root: Path = ROOT) -> set[Path]:
    """Files of `module` and of every project module it imports, transitively."""
    todo, seen = list(_with_parents(module)), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for imported in imported_modules(module_file(m, root), root):
            todo += list(_with_parents(imported) - seen)
    return {module_file(m, root) for m in seen}


def normalised(source: str) -> str:
    """What a module's code does, without comments, docstrings or layout: its syntax tree, dumped
    (an edit that changes only those changes nothing here; any other edit does)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


@functools.cache
def code_hash(module: str, root: Path = ROOT) -> str:
    """sha256 over the code (`normalised`) of `module` and everything it imports from the project."""
    files = sorted(closure(module, root), key=Path.as_posix)
    return sha256_text("".join(f"{f.as_posix()}\n{normalised((root / f).read_text())}\n" for f in files))


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of third-party packages whose numerics shape an image."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out

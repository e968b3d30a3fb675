"""Git for the registry: the one subprocess wrapper, release versions and tag names, tree checks.

A release tag is `<dataset.name>@vX.Y.Z` (the GTO format). Every git call of the registry goes
through `run`, `show_file` or `resolve`, so a failure is one line naming the git command.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from rebalance.core.errors import RebalanceError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-/]*[a-z0-9])?$")  # GTO artifact names
VERSION_RE = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
TAG_RE = re.compile(r"^(?P<name>[a-z0-9]([a-z0-9-/]*[a-z0-9])?)@v(?P<version>\d+\.\d+\.\d+)$")


def one_line(err: BaseException | str, limit: int = 240) -> str:
    """An error (or a command's output) as one line of at most `limit` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run(root: Path, *args: str, check: bool = True) -> str:
    """`git ARGS` in `root`; its stdout. With `check`, a failure raises RebalanceError."""
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RebalanceError(f"git {args[0]} failed: {one_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def show_file(root: Path, rev: str, path: str) -> str | None:
    """The text of `path` at revision `rev`, or None where git has no such file there."""
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def resolve(root: Path, rev: str) -> str:
    """The commit sha a revision (tag, branch, sha) names; an unknown revision is refused."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RebalanceError(f"unknown revision {rev!r}; see `git tag` or `rebalance releases`")
    return proc.stdout.strip()


def head(root: Path) -> str:
    """The sha of HEAD."""
    return run(root, "rev-parse", "HEAD").strip()


def parse_version(version: str) -> str:
    """`1.2.3` or `v1.2.3` -> `1.2.3`; anything else is refused."""
    if not VERSION_RE.match(version):
        raise RebalanceError(f"version {version!r} is not semver MAJOR.MINOR.PATCH (e.g. 1.0.0)")
    return version.lstrip("v")


def tag_name(name: str, version: str) -> str:
    """The CONTRACT's release tag: `<dataset.name>@vX.Y.Z`."""
    if not NAME_RE.match(name):
        raise RebalanceError(
            f"dataset.name {name!r} cannot name a release: use lowercase letters, digits and dashes"
        )
    return f"{name}@v{parse_version(version)}"


def check_tag_free(root: Path, tag: str) -> None:
    """Releases are immutable: the tag must not exist yet."""
    if run(root, "tag", "--list", tag).strip():
        raise RebalanceError(f"tag {tag} already exists; releases are immutable, pick a new version")


def check_clean(root: Path) -> None:
    """A release is built from a commit: no modified or untracked (non-ignored) paths."""
    dirty = run(root, "status", "--porcelain", "--untracked-files=normal").splitlines()
    if dirty:
        raise RebalanceError(
            f"git tree is dirty ({len(dirty)} path(s), first: {dirty[0][3:]}); commit or stash first"
        )

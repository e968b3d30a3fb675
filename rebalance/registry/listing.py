"""The list of releases: every `<name>@vX.Y.Z` tag with its date, commit and headline metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebalance.core import paths
from rebalance.core.tables import markdown_table
from rebalance.registry import git
from rebalance.registry.card import HEADLINE

_TAG_FORMAT = "--format=%(refname:short)%09%(creatordate:iso-strict)%09%(objecttype)"


def _release(root: Path, tag: str, date: str, kind: str, m) -> dict[str, Any]:
    """One release tag's row; its metrics come from the tagged commit's metrics/eval.json."""
    shown = git.show_file(root, tag, paths.EVAL.as_posix())
    evalm = json.loads(shown) if shown is not None else {}
    return {
        "tag": tag,
        "name": m["name"],
        "version": m["version"],
        "date": date,
        "annotated": kind == "tag",
        "commit": git.run(root, "rev-list", "-n", "1", tag).strip(),
        **{k: evalm.get(k) for k in HEADLINE},
    }


def list_releases(root: str | Path = ".") -> list[dict[str, Any]]:
    """Release tags (oldest first) with date, commit and headline metrics read from git."""
    root = Path(root).resolve()
    out = git.run(root, "for-each-ref", "--sort=creatordate", _TAG_FORMAT, "refs/tags")
    releases = []
    for line in out.splitlines():
        tag, date, kind = line.split("\t")
        m = git.TAG_RE.match(tag)
        if m:
            releases.append(_release(root, tag, date, kind, m))
    return releases


def releases_table(releases: list[dict[str, Any]]) -> str:
    """The releases as a Markdown table (or a hint when there are none)."""
    if not releases:
        return "no releases yet (`rebalance release VERSION`)"
    return markdown_table(
        ["tag", "date", "commit", *HEADLINE],
        [[r["tag"], r["date"], r["commit"][:8], *[r[k] for k in HEADLINE]] for r in releases],
    )

"""The registry: gated releases with data cards, the list of releases, comparison of two revisions.

A release is an annotated git tag `<dataset.name>@vX.Y.Z` (the GTO format; `dataset.name` is also
the name of the `data/fused` artifact in dvc.yaml) on a commit whose data is in the DVC remote.
Everything here reads revisions through git and DVC's Python API; nothing pulls data.

Modules:
- `git`: the git subprocess wrapper, release versions and tag names, clean-tree and free-tag checks.
- `remote`: opening the DVC repository, quiet DVC logging, the remote (choice, credentials in the
  tracked config, push and verify), `safe_url`.
- `gate`: an up-to-date pipeline, committed metrics, and the quality gate (`release.gate`).
- `card`: the data card (Markdown) committed as `releases/<tag>.md`.
- `publish`: `release`, the order of it all: checks, push and verify, card commit, tag.
- `listing`: `list_releases` and `releases_table`.
- `comparison`: `compare` of two revisions and `compare_markdown`.
- `consume`: `open_release`, a release (any revision) as a torch Dataset, read through DVC's
  filesystem API (imported on first use: it needs torch).
"""

from __future__ import annotations

from rebalance.registry.comparison import compare, compare_markdown
from rebalance.registry.git import TAG_RE, parse_version, tag_name
from rebalance.registry.listing import list_releases, releases_table
from rebalance.registry.publish import release
from rebalance.registry.remote import safe_url, tracked_secrets

__all__ = [
    "TAG_RE",
    "compare",
    "compare_markdown",
    "list_releases",
    "open_release",
    "parse_version",
    "release",
    "releases_table",
    "safe_url",
    "tag_name",
    "tracked_secrets",
]


def __getattr__(name: str):
    """`open_release`, imported on first use (torch is loaded only then)."""
    if name == "open_release":
        from rebalance.registry.consume import open_release

        return open_release
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""`release`: check, push, verify, document and tag one release.

Order: every check first, then push (data and run cache) and verify the remote, then commit the
data card, then tag. A failed push therefore leaves neither commit nor tag; a failed commit
removes the card, a failed tag undoes the commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rebalance import config
from rebalance.config import Params
from rebalance.core import manifest, paths
from rebalance.core.errors import RebalanceError
from rebalance.registry import git, testset
from rebalance.registry.card import card_path, data_card, lock_out
from rebalance.registry.gate import check_metrics, check_up_to_date, gate, require_pass, warnings
from rebalance.registry.remote import (
    check_no_tracked_secrets,
    choose_remote,
    open_repo,
    push_and_verify,
    remote_url,
)


def _artifacts(repo) -> dict[str, tuple[str, str]]:
    """{name: (type, path)} of the artifacts declared in dvc.yaml."""
    return {
        n: (a.type or "artifact", a.path) for arts in repo.artifacts.read().values() for n, a in arts.items()
    }


def _card_and_gate(
    root: Path, repo, params: Params, tag: str, message: str | None, remote: str, test_set: dict
) -> tuple[str, list[dict[str, Any]]]:
    """Read the committed metrics and the fused manifest; the data card and the gate's rows."""
    counts = json.loads((root / paths.COUNTS).read_text())
    evalm = json.loads((root / paths.EVAL).read_text())
    fused = manifest.read(root / paths.FUSED / manifest.FILENAME)
    rows = gate(root, params, evalm, fused)
    artifacts = _artifacts(repo)
    summary_md = (root / paths.SUMMARY_MD).read_text() if (root / paths.SUMMARY_MD).is_file() else None
    card = data_card(
        tag=tag,
        message=message,
        params=params,
        counts=counts,
        evalm=evalm,
        fused=fused,
        gate_rows=rows,
        summary_md=summary_md,
        commit=git.head(root),
        remote=remote,
        remote_url=remote_url(repo, remote),
        artifacts=artifacts,
        fused_out=lock_out(root, paths.FUSED.as_posix()),
        test_set=test_set,
        kept=json.loads((root / paths.FILTER).read_text()) if (root / paths.FILTER).is_file() else None,
    )
    return card, rows


def _commit_card(root: Path, tag: str, card: str) -> None:
    """Write and commit releases/<tag>.md; on failure leave neither the file nor the commit."""
    rel = card_path(tag)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card)
    try:
        git.run(root, "add", "--", rel)
        git.run(root, "commit", "-q", "-m", f"Release {tag}: data card", "--", rel)
    except RebalanceError:
        git.run(root, "reset", "-q", "--", rel, check=False)
        path.unlink(missing_ok=True)
        raise


def _tag(root: Path, tag: str, message: str | None) -> None:
    """The annotated release tag on the card's commit; on failure undo that commit."""
    try:
        name, v = tag.split("@", 1)
        git.run(root, "tag", "-a", tag, "-m", message or f"Registering artifact {name} version {v}")
    except RebalanceError:
        git.run(root, "reset", "-q", "--keep", "HEAD~1", check=False)
        raise


def release(
    version: str,
    message: str | None = None,
    dry_run: bool = False,
    remote: str | None = None,
    root: str | Path = ".",
    echo: Callable[[str], None] = print,
    new_test_set: bool = False,
) -> str:
    """Check, push, verify, document and tag one release; returns the tag."""
    root = Path(root).resolve()
    params = config.load(root / paths.PARAMS)
    tag = git.tag_name(params.dataset.name, version)
    git.check_tag_free(root, tag)
    git.check_clean(root)
    repo = open_repo(root)
    with repo:
        remote = choose_remote(repo, remote, params.release.remote)
        check_no_tracked_secrets(repo)
        check_up_to_date(repo)
        check_metrics(root)
        test_set = testset.check_frozen(root, params.dataset.name, new_test_set)
        card, rows = _card_and_gate(root, repo, params, tag, message, remote, test_set)
        if dry_run:
            echo(card)
        for line in warnings(params, json.loads((root / paths.COUNTS).read_text())):
            echo(f"warning: {line}")
        require_pass(rows)
        if dry_run:
            echo(
                f"dry run: checks pass; would push to DVC remote {remote!r}, "
                f"commit {card_path(tag)} and tag {tag}"
            )
            return tag
        pushed = push_and_verify(repo, remote, tag)
    _commit_card(root, tag, card)
    _tag(root, tag, message)
    echo(f"released {tag}: {pushed} file(s) pushed to DVC remote {remote!r}, data card {card_path(tag)}")
    echo(f"publish it: git push origin HEAD {tag}")
    return tag

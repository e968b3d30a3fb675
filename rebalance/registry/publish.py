"""`release`: check, push, verify, document and tag one release, then keep its test set.

Order: every check first, then push (data and run cache) and verify the remote, then commit the
data card, then tag. A failed push therefore leaves neither commit nor tag; a failed commit
removes the card, a failed tag undoes the commit. After the tag, one more commit writes the
release's real test images to releases/test_set.json: stage count keeps them as the test set of
every later build (images new to the source go to train or val), so the tagged commit itself stays
exactly as built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from rebalance import config
from rebalance.config import Params
from rebalance.core import atomic, paths
from rebalance.core.errors import RebalanceError
from rebalance.core.tables import markdown_table
from rebalance.registry import changes, git, testset
from rebalance.registry.card import Build, card_path, data_card, lock_out
from rebalance.registry.gate import check_metrics, check_up_to_date, require_pass, warnings
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


def _changes(root: Path, previous: str | None, fused) -> list[str]:
    """The card's "Changes since <previous release>": files added, removed and regenerated, and
    the params that differ."""
    if previous is None:
        return []
    before = changes.manifest_at(root, previous)
    files = changes.lines(None if before is None else changes.diff(before, fused), previous, "this release")
    shown = git.show_file(root, previous, paths.PARAMS.as_posix())
    old = changes.flatten(yaml.safe_load(shown) or {}) if shown else {}
    new = changes.flatten(yaml.safe_load((root / paths.PARAMS).read_text()) or {})
    changed = [[f"`{k}`", json.dumps(old.get(k)), json.dumps(new.get(k))] for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)]  # fmt: skip
    table = markdown_table(["param", previous, "this release"], changed) if changed else "Params unchanged."
    params = ["", table]
    return ["", f"## Changes since {previous}", "", *files, *params]


def _card_and_gate(
    root: Path, repo, params: Params, tag: str, message: str | None, remote: str, test_set: dict
) -> tuple[str, list[dict[str, Any]]]:
    """Read the committed metrics and the fused manifest; the data card and the gate's rows."""
    build = Build.read(root, params)
    card = data_card(
        build,
        tag=tag,
        message=message,
        commit=git.head(root),
        remote=remote,
        remote_url=remote_url(repo, remote),
        artifacts=_artifacts(repo),
        fused_out=fused_lock(root),
        test_set=test_set,
        changes=_changes(root, test_set.get("previous"), build.fused),
    )
    return card, build.gate_rows


def fused_lock(root: Path) -> dict[str, Any]:
    """data/fused as dvc.lock records it: its outputs' md5s, sizes and file counts together."""
    outs = [lock_out(root, (paths.FUSED / name).as_posix()) for name in paths.FUSED_OUTS]
    if not all(outs):
        return {}
    return {
        "md5": " ".join(f"{name}:{o['md5'][:12]}" for name, o in zip(paths.FUSED_OUTS, outs)),
        "size": sum(o.get("size", 0) for o in outs),
        "nfiles": sum(o.get("nfiles", 1) for o in outs),
    }


def _keep_test_set(root: Path, tag: str) -> bool:
    """Commit releases/test_set.json: this release's real test images, which later builds keep.
    False when it already lists them (a release on the same test set)."""
    record = testset.frozen_record(root, tag)
    frozen = root / paths.FROZEN_TEST_SET
    old = json.loads(frozen.read_text()) if frozen.is_file() else {}
    if old.get("images") == record["images"]:
        return False
    atomic.write_json(frozen, record)
    rel = paths.FROZEN_TEST_SET.as_posix()
    git.run(root, "add", "--", rel)
    git.run(root, "commit", "-q", "-m", f"Keep the test set of {tag} for later builds", "--", rel)
    return True


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
    if _keep_test_set(root, tag):
        echo(
            f"{paths.FROZEN_TEST_SET.as_posix()}: the test set of {tag}, kept by later builds (the next "
            "`dvc repro` re-runs stage count to read it)"
        )
    echo(f"publish it: git push origin HEAD {tag}")
    return tag

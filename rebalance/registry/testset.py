"""The frozen test set: every release names its test set, and a new one must be asked for.

A test set's identity is `metrics/test_set.json` (written by stage fuse: the sha256 over its
`path:sha256` lines, and the file list), read from git at any revision. Releases of one dataset
keep one test set, so their metrics stay comparable and a consumer who trained on one release
never tests on images of another's train split: a release writes its test images to
`releases/test_set.json`, and stage count keeps them in test while the source grows (new images
go to train or val). A test set that only lost images gone from the source is still that test set
(the card says how many). `count.new_test_set: true` draws a new one, which
`rebalance release --new-test-set` then records; `rebalance compare` shows the overlap of two
revisions' test sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebalance.core import paths
from rebalance.core.errors import RebalanceError
from rebalance.registry import git


def at(root: Path, rev: str | None) -> dict[str, Any] | None:
    """The test set of a revision (None: the working tree): {"sha256", "n", "images"?}, or None."""

    def read(path: Path) -> dict[str, Any] | None:
        if rev is None:
            file = root / path
            return json.loads(file.read_text()) if file.is_file() else None
        shown = git.show_file(root, rev, path.as_posix())
        return json.loads(shown) if shown is not None else None

    found = read(paths.TEST_SET)
    if found and found.get("sha256"):
        return found
    evalm = read(paths.EVAL) or {}  # older revisions: only the hash, in eval.json
    return {"sha256": evalm["test_set"], "n": evalm.get("n_test")} if evalm.get("test_set") else None


def overlap(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """Whether two test sets are the same, and how many images (path and bytes) they share."""
    out: dict[str, Any] = {
        "a": a and a["sha256"],
        "b": b and b["sha256"],
        "same": bool(a and b and a["sha256"] == b["sha256"]),
        "n_a": a and a.get("n"),
        "n_b": b and b.get("n"),
    }
    if a and b and "images" in a and "images" in b:
        ids_a = {(i["path"], i["sha256"]) for i in a["images"]}
        ids_b = {(i["path"], i["sha256"]) for i in b["images"]}
        out |= {"shared": len(ids_a & ids_b), "only_a": len(ids_a - ids_b), "only_b": len(ids_b - ids_a)}
    return out


def previous_release(root: Path, name: str) -> str | None:
    """The highest existing release tag of dataset `name` (semver order), or None."""
    best = None
    for tag in git.run(root, "tag", "--list", f"{name}@v*").split():
        m = git.TAG_RE.match(tag)
        if m and m["name"] == name:
            version = tuple(int(x) for x in m["version"].split("."))
            best = max(best or (version, tag), (version, tag))
    return best and best[1]


def check_frozen(root: Path, name: str, new_test_set: bool) -> dict[str, Any]:
    """This release's test set against the previous release's: refuse a change unless asked."""
    current = at(root, None)
    if current is None:
        raise RebalanceError(
            f"{paths.TEST_SET.as_posix()}: missing; run `dvc repro` (stage fuse writes it) and commit"
        )
    previous = previous_release(root, name)
    info = {"sha256": current["sha256"], "n": current.get("n"), "previous": previous, "new": new_test_set}
    if previous is None:
        return info | {"changed": False}
    info |= {"changed": False, **{k: v for k, v in overlap(at(root, previous), current).items() if k != "b"}}
    info["changed"] = not info.pop("same")
    if info["changed"] and info.get("only_b") == 0 and info.get("shared"):
        # only images gone from the source: the same test set less them (the card names how many)
        info["changed"], info["removed"] = False, info["only_a"]
    if info["changed"] and not new_test_set:
        shared = f", {info['shared']} of {info['n']} images shared" if "shared" in info else ""
        raise RebalanceError(
            f"the test set changed since {previous} ({(info['a'] or '?')[:12]} -> {current['sha256'][:12]}"
            f"{shared}); metrics would not be comparable: keep it (count.new_test_set: false, "
            f"{paths.FROZEN_TEST_SET.as_posix()} as {previous} wrote it, then `dvc repro`) or pass "
            "--new-test-set to start a new test set (the data card records it)"
        )
    return info


def frozen_record(root: Path, tag: str) -> dict[str, Any]:
    """What releases/test_set.json holds after release `tag`: its real test images by their name
    in data/raw (stage count keeps them in test), from metrics/test_set.json."""
    current = at(root, None)
    if current is None or "images" not in current:
        raise RebalanceError(f"{paths.TEST_SET.as_posix()}: no file list; run `dvc repro`")
    images = [
        {"name": i["path"].split("/", 1)[1], "label": i["label"], "sha256": i["sha256"]}
        for i in current["images"]
    ]
    about = (
        "The real test images of the last release (names in data/raw), written by `rebalance release`; "
        "stage count keeps them as the test set unless count.new_test_set."
    )
    return {"about": about, "release": tag, "sha256": current["sha256"], "images": images}


def card_lines(info: dict[str, Any]) -> list[str]:
    """The data card's test-set section."""
    line = (
        f"`{info['sha256'][:16]}` ({info.get('n', '?')} real images, listed in `{paths.TEST_SET.as_posix()}`)"
    )
    if info["previous"] is None:
        state = "the first release of this dataset: this test set is now frozen for the next ones"
    elif not info["changed"] and info.get("removed"):
        state = (
            f"the test set of {info['previous']} less {info['removed']} image(s) no longer in the source; "
            "no new image entered it"
        )
    elif not info["changed"]:
        state = f"the same test set as {info['previous']}: metrics are comparable"
    else:
        shared = f"; {info['shared']} images shared with it" if "shared" in info else ""
        state = f"**a NEW test set** (`--new-test-set`), replacing {info['previous']}'s{shared}"
    return ["", "## Test set", "", f"{line}: {state}."]

"""The split of the real images: stable, content-aware, duplicates and groups kept together.

A real image's identity is its group value (`dataset.group_by`) if it has one, else the sha256 of
its decoded pixels. Exact and near-duplicates (rebalance.dataset.duplicates) and members of one group
are joined (union-find); a joined set's identity is the smallest identity among its members. Its
split is a function of that identity and `count.seed` only: u = sha256(seed, identity) read as a
number in [0, 1), against the cumulative `count.split` fractions. Adding or removing an image
therefore never moves another one (unless it is that image's duplicate or shares its group).
Per-class counts are close to, not exactly, the fractions; a class left with fewer than
`count.min_test_per_class` val or test images then takes its train sets with the lowest u into
them (`fill_quota`: a class that already has them keeps its draw). A source that brings its own split
(split folders, a `split` column, an .npz) is used as is; a group across its splits is then an
error, and of an exact or near-duplicate pair across its splits the copy in the later split
(val before test) is left out (`Result.dropped`, reported): the official split stays exact for
every image kept (the quota fills only the splits drawn from its train), and no val/test image
has a copy in train.

After a release (`releases/test_set.json`, unless `count.new_test_set`) its test set is kept:
its images stay in test, an image new to the source never enters test (a hash split draws it
among train and val in their proportions; an official split's new test image, and any image joined
to a released test image as its duplicate or group member, is left out, `Result.held_out`), and
the quota fills train and val only.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rebalance.config.schema import SPLITS
from rebalance.core.errors import RebalanceError
from rebalance.dataset.duplicates import Fingerprint, describe, duplicate_pairs, groups

MIN_PER_CLASS = 3


@dataclass
class RealSet:
    """The real images and what the split needs to know about them."""

    images: list[tuple[str, str]]  # (name in data/raw, label), sorted
    root: Path  # the folder the names are relative to (for messages)
    prints: list[Fingerprint] | None = None  # aligned with images; None: pixels unknown (estimate)
    groups: dict[str, str] = field(default_factory=dict)  # name -> group value
    official: dict[str, str] = field(default_factory=dict)  # name -> split given by the source
    sha256: dict[str, str] = field(default_factory=dict)  # name -> file sha256, where already known


@dataclass
class Result:
    assignment: dict[str, str]  # name -> split
    identity: dict[str, str]  # name -> the identity its split was drawn from
    method: str  # "hash" | "official"
    duplicates: list[list[str]]  # groups of exact/near-duplicate names
    warnings: list[str]
    dropped: dict[str, str] = field(
        default_factory=dict
    )  # name -> why (official split: a copy in another split)
    sampled_out: dict[str, int] = field(default_factory=dict)  # class -> left out by count.max_per_class
    drawn: dict[str, int] = field(
        default_factory=dict
    )  # official split without val/test: drawn from its train
    topped_up: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # class -> {split: images moved there by count.min_test_per_class}
    kept_test: dict = field(default_factory=dict)  # the released test set kept: release, kept, gone, ...
    held_out: dict[str, str] = field(default_factory=dict)  # name -> why (new, joined to the released test)


@dataclass(frozen=True)
class ReleasedTest:
    """The real test images of the last release (releases/test_set.json): names in data/raw."""

    release: str
    names: frozenset[str]


def released_test(path: Path, new_test_set: bool) -> ReleasedTest | None:
    """The test set to keep, or None: no release yet, or a new test set asked for."""
    if new_test_set or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        names = frozenset(i["name"] for i in data.get("images") or [])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RebalanceError(
            f"{path}: not a released test set ({e}); restore it from git (`git checkout -- {path}`)"
        ) from None
    return ReleasedTest(data.get("release") or "?", names) if names else None


def unit(seed: int, identity: str) -> float:
    """sha256(seed, identity) as a number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}\n{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def draw(seed: int, identity: str, fractions: dict[str, float]) -> str:
    u, total = unit(seed, identity), 0.0
    for s in SPLITS:
        total += fractions[s]
        if u < total:
            return s
    return SPLITS[-1]


def make(
    real: RealSet,
    classes: list[str],
    fractions: dict[str, float],
    seed: int,
    bits: int,
    max_per_class: dict[str, int] | None = None,
    redraw_val: bool = False,
    min_test: int = 0,
    released: ReleasedTest | None = None,
) -> Result:
    """The split (module doc); with `max_per_class`, at most that many images of a class kept;
    with `redraw_val` an official val is merged into train and val drawn anew (count.official_val);
    with `min_test` every class at least that many val and test images (count.min_test_per_class);
    with `released` that release's test set kept."""
    unknown = sorted(set(max_per_class or {}) - set(classes))
    if unknown:
        raise RebalanceError(f"count.max_per_class: {unknown[0]!r} is not in dataset.classes; fix the key")
    names = [n for n, _ in real.images]
    labels = [c for _, c in real.images]
    sizes = Counter(labels)
    for c in classes:
        if sizes[c] < MIN_PER_CLASS:
            raise RebalanceError(
                f"class {c} has {sizes[c]} image(s); a split needs at least {MIN_PER_CLASS} per class "
                "(train, val, test): add images or remove it from dataset.classes"
            )
    warnings: list[str] = []
    pairs = duplicate_pairs(real.prints, bits) if real.prints is not None else []
    for i, j in pairs:
        if labels[i] != labels[j]:
            what = describe(real.prints[i], real.prints[j])
            where = f"{real.root / names[i]} ({labels[i]}) and {real.root / names[j]} ({labels[j]})"
            if real.prints[i].pixels == real.prints[j].pixels:
                raise RebalanceError(
                    f"{where} are the same image under two labels; remove one or fix its label"
                )
            warnings.append(f"{names[i]} ({labels[i]}) and {names[j]} ({labels[j]}): {what} under two labels")
    index = {n: i for i, n in enumerate(names)}
    group_pairs, first_of = [], {}
    for name, value in sorted(real.groups.items()):
        if value in first_of:
            group_pairs.append((first_of[value], index[name]))
        else:
            first_of[value] = index[name]
    joined = groups(len(names), pairs + group_pairs)
    identity = {n: _own_identity(real, i) for i, n in enumerate(names)}
    for members in joined:
        shared = min(identity[names[i]] for i in members)
        identity.update({names[i]: shared for i in members})
    dropped: dict[str, str] = {}
    if real.official:
        dropped = _check_official(real, names, pairs, group_pairs)
        assignment = {n: s for n, s in real.official.items() if n not in dropped}
        if redraw_val:  # Kermany's 16-image val: merged into train, then drawn as a missing val is
            assignment = {n: "train" if s == "val" else s for n, s in assignment.items()}
        method = "official"
        drawn = draw_missing(assignment, identity, fractions, seed)
    else:
        assignment = {n: draw(seed, identity[n], fractions) for n in names}
        method, drawn = "hash", {}
    dup_groups = [[names[i] for i in m] for m in groups(len(names), pairs)]
    if dropped:
        warnings.append(
            f"{len(dropped)} val/test image(s) left out: duplicates of images in an earlier official split, "
            f"first: {next(iter(dropped))} ({next(iter(dropped.values()))})"
        )
    kept_test, held_out = {}, {}
    if released is not None:
        kept_test, held_out = keep_test(assignment, identity, released, fractions, seed, method)
    sampled_out = keep_at_most(assignment, identity, real.images, max_per_class or {}, seed)
    filled = SPLITS if method == "hash" else ("train", *drawn) if drawn else ()
    if released is not None:
        filled = tuple(s for s in filled if s != "test")
    topped_up = fill_quota(assignment, identity, real.images, classes, min_test, seed, filled)
    for moved in topped_up.values():  # an official split's missing split: the quota's images are drawn too
        for s, n in moved.items():
            if s in drawn:
                drawn[s] += n
    kept = RealSet([im for im in real.images if im[0] in assignment], real.root)
    warnings += _class_warnings(kept, assignment, classes, method, seed)
    return Result(
        assignment, identity, method, dup_groups, warnings, dropped, sampled_out, drawn, topped_up,
        kept_test, held_out,
    )  # fmt: skip


def keep_test(
    assignment: dict[str, str],
    identity: dict[str, str],
    released: ReleasedTest,
    fractions: dict[str, float],
    seed: int,
    method: str,
) -> tuple[dict, dict[str, str]]:
    """Keep a release's test set (module doc). Changes `assignment`; returns what happened
    ({"release", "kept", "gone", "redrawn"}) and {name: why} of the images left out."""
    joined = {identity[n] for n in released.names if n in assignment}
    kept = fractions["train"] + fractions["val"]
    among = {s: 0.0 if s == "test" else fractions[s] / kept for s in SPLITS}
    held_out: dict[str, str] = {}
    redrawn = 0
    for name in sorted(assignment):
        if name in released.names:
            assignment[name] = "test"
        elif identity[name] in joined:
            held_out[name] = f"a duplicate or group member of a test image of {released.release}"
        elif assignment[name] == "test" and method == "hash":
            assignment[name] = draw(seed, identity[name], among)
            redrawn += 1
        elif assignment[name] == "test":
            held_out[name] = f"new in the source's test split since {released.release}"
    for name in held_out:
        del assignment[name]
    gone = sorted(released.names - set(assignment))
    kept = len(released.names) - len(gone)
    return {"release": released.release, "kept": kept, "gone": gone, "redrawn": redrawn}, held_out


def draw_missing(
    assignment: dict[str, str], identity: dict[str, str], fractions: dict[str, float], seed: int
) -> dict[str, int]:
    """An official split with no val (or no test) image at all (Kaggle's `train/ test/` folders):
    that split is drawn from the official train images as the hash split draws, among train and
    the missing splits in `count.split`'s proportions, so an identity set (duplicates, a group)
    moves whole and an image's draw depends only on its identity and the seed. The official val
    and test stay exact. Changes `assignment`; returns {split: images drawn}."""
    missing = [s for s in SPLITS[1:] if s not in assignment.values()]
    if not missing or "train" not in assignment.values():
        return {}
    total = fractions["train"] + sum(fractions[s] for s in missing)
    among = {s: fractions[s] / total if s in ("train", *missing) else 0.0 for s in SPLITS}
    drawn = dict.fromkeys(missing, 0)
    for name, split in assignment.items():
        if split == "train":
            new = draw(seed, identity[name], among)
            if new != "train":
                assignment[name] = new
                drawn[new] += 1
    return drawn


def keep_at_most(
    assignment: dict[str, str],
    identity: dict[str, str],
    images: list[tuple[str, str]],
    limits: dict[str, int],
    seed: int,
) -> dict[str, int]:
    """Leave out images of a class beyond `limits[class]` (count.max_per_class): the class's
    identity sets (an image with its duplicates and group members) are taken in the order of
    sha256(seed, "keep", identity) while they fit, the rest removed from `assignment`. A set's
    place in that order never depends on the others, so adding images to the source keeps the
    kept ones unless they no longer fit. Returns {class: images left out}."""
    out = {}
    for label, limit in sorted(limits.items()):
        sets: dict[str, list[str]] = {}
        for name, c in images:
            if c == label and name in assignment:
                sets.setdefault(identity[name], []).append(name)
        kept = 0
        for key in sorted(sets, key=lambda i: unit(seed, f"keep\n{i}")):
            if kept + len(sets[key]) <= limit:
                kept += len(sets[key])
            else:
                for name in sets[key]:
                    del assignment[name]
        out[label] = sum(len(v) for v in sets.values()) - kept
    return out


def fill_quota(
    assignment: dict[str, str],
    identity: dict[str, str],
    images: list[tuple[str, str]],
    classes: list[str],
    minimum: int,
    seed: int,
    splits: tuple[str, ...] = SPLITS,
) -> dict[str, dict[str, int]]:
    """At least `minimum` images of every class in test and in val, and one in train
    (count.min_test_per_class), among `splits`: the splits the hash drew (an official split's own
    val or test stays as given). A class short in a split takes, lowest sha256(seed, identity)
    first, whole identity sets (an image with its duplicates and group members) from its train,
    never the last one; then from a split with more than it needs. A class that has its quota
    keeps its draw, and the moves depend only on identities and the seed, so adding images moves
    no image of a class that had enough. Too few sets (2 * minimum + 1 for a hash split) is an
    error. Changes `assignment`; returns {class: {split: images moved there}}."""
    if not minimum or not splits:
        return {}
    members: dict[str, list[str]] = {}
    for name in assignment:
        members.setdefault(identity[name], []).append(name)
    label = {n: c for n, c in images if n in assignment}
    need = {s: 1 if s == "train" else minimum for s in splits}
    moved: dict[str, dict[str, int]] = {}
    for c in classes:
        mine = [n for n, lab in label.items() if lab == c]
        sets = {identity[n] for n in mine if assignment[n] in need}
        if len(sets) < sum(need.values()):
            raise RebalanceError(_quota_error(c, len(mine), len(sets), minimum, splits))
        have = {s: sum(assignment[n] == s for n in mine) for s in need}
        short = [s for s in ("test", "val", "train") if s in need and have[s] < need[s]]
        sets = sorted(sets, key=lambda i: unit(seed, i)) if short else []
        for s in short:
            for sources in (("train",), tuple(need)):  # train first; then a split with some to spare
                for key in sets:
                    if have[s] >= need[s]:
                        break
                    src = assignment[members[key][0]]
                    n = sum(label[m] == c for m in members[key])
                    if src == s or src not in sources or have[src] - n < need[src]:
                        continue
                    if src != "train" and any(label[m] != c for m in members[key]):
                        continue  # another class's val or test image: not taken from it
                    for m in members[key]:
                        assignment[m] = s
                    have[src] -= n
                    have[s] += n
                    moved.setdefault(c, {}).setdefault(s, 0)
                    moved[c][s] += n
    return moved


def _quota_error(c: str, n: int, units: int, minimum: int, splits: tuple[str, ...]) -> str:
    """count.min_test_per_class asks more of class `c` than its `units` identity sets can give."""
    drawn = [s for s in ("val", "test") if s in splits]
    if splits == SPLITS:
        has = f"class {c} has {n} image(s)"
        if units < n:
            has += f" in {units} split unit(s) (duplicates and groups stay in one split)"
    else:
        has = f"class {c} has {units} split unit(s) in the source's train to draw {' and '.join(drawn)} from"
    parts = ", ".join(f"{minimum} {s}" for s in drawn)
    return (
        f"{has}; count.min_test_per_class {minimum} needs at least {minimum * len(drawn) + 1} "
        f"({parts}, 1 train): add images, or lower count.min_test_per_class"
    )


def _own_identity(real: RealSet, i: int) -> str:
    name = real.images[i][0]
    if name in real.groups:
        return f"group:{real.groups[name]}"
    if real.prints is not None:
        return f"pixels:{real.prints[i].pixels}"
    return f"name:{name}"


def _check_official(real: RealSet, names: list[str], pairs, group_pairs) -> dict[str, str]:
    """Errors for an official split that splits a group; the duplicates to leave out (name -> why)."""
    missing = [n for n in names if n not in real.official]
    if missing:
        raise RebalanceError(f"{real.root / missing[0]}: no official split while other images have one")
    for i, j in group_pairs:
        a, b = real.official[names[i]], real.official[names[j]]
        if a != b:
            raise RebalanceError(
                f"{real.root / names[i]} ({a}) and {real.root / names[j]} ({b}): same group "
                f"{real.groups[names[i]]!r} in two official splits (a leak); move one to the other's split"
            )
    order = {s: k for k, s in enumerate(SPLITS)}
    dropped: dict[str, str] = {}
    for i, j in sorted(pairs):
        a, b = real.official[names[i]], real.official[names[j]]
        if a == b:
            continue
        keep, drop = (i, j) if order[a] < order[b] else (j, i)
        if names[keep] in dropped:
            continue
        what = describe(real.prints[i], real.prints[j])
        dropped.setdefault(names[drop], f"{what} of {real.official[names[keep]]} image {names[keep]}")
    return dropped


def _class_warnings(real: RealSet, assignment: dict[str, str], classes, method: str, seed: int) -> list[str]:
    """A warning for each class without a val or test image, and for an empty test split (stage
    evaluate then refuses); an error for a class without train images, and for an empty val split
    (every classifier is selected on val)."""
    out = []
    in_split = Counter(assignment[n] for n, _ in real.images if n in assignment)
    n_all = sum(in_split.values())
    fix = {s: "add images, or raise count.split." + s if method == "hash" else f"give the source a {s} split"
           for s in ("val", "test")}  # fmt: skip
    if in_split["val"] == 0:
        raise RebalanceError(f"the val split is empty ({n_all} images in all, {method} split); {fix['val']}")
    if in_split["test"] == 0:
        out.append(f"the test split is empty ({n_all} images in all, {method} split): nothing can be "
                   f"evaluated; {fix['test']}")  # fmt: skip
    for c in classes:
        per = Counter(assignment[n] for n, label in real.images if label == c)
        n = sum(per.values())
        if per["train"] == 0:
            fix = "add images or change count.seed" if method == "hash" else "add train images"
            raise RebalanceError(f"class {c}: none of its {n} images is in train ({method} split); {fix}")
        for s in ("val", "test"):
            if per[s] == 0:
                out.append(f"class {c}: no {s} image ({n} images, {method} split, seed {seed})")
    return out


def counts(images: list[tuple[str, str]], assignment: dict[str, str], classes: list[str]) -> dict:
    out = {s: {c: 0 for c in classes} for s in SPLITS}
    for name, label in images:
        if name in assignment:  # not a left-out duplicate
            out[assignment[name]][label] += 1
    return out

"""The one loader of params.yaml, with validation that names the bad key and the fix."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from stages.errors import RebalanceError

GROUPS = ("dataset", "raw", "count", "synthesize", "flip", "fuse", "train", "evaluate")
SPLITS = ("train", "val", "test")
TARGET_STRATEGIES = ("fixed", "max")


class ParamsError(RebalanceError):
    pass


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml; return it as a plain dict."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run from the repository root")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    validate(params, str(path))
    return params


def _need(cond: bool, where: str, key: str, message: str) -> None:
    if not cond:
        raise ParamsError(f"{where}: `{key}` {message}")


def validate(p: dict[str, Any], where: str = "params.yaml") -> None:
    for group in GROUPS:
        _need(isinstance(p.get(group), dict), where, group, "is missing (a mapping is required)")

    ds = p["dataset"]
    _need(isinstance(ds.get("name"), str) and ds["name"] != "", where, "dataset.name", "must be a name")
    classes = ds.get("classes")
    _need(
        isinstance(classes, list) and len(classes) >= 2 and len(set(classes)) == len(classes),
        where,
        "dataset.classes",
        "must list at least two distinct class names",
    )
    for c in classes:
        _need(isinstance(c, str) and c and "/" not in c, where, "dataset.classes", f"has bad name {c!r}")
    bins = ds.get("lesion_bins")
    if bins is not None:
        _need(
            isinstance(bins, dict) and set(bins) == set(classes),
            where,
            "dataset.lesion_bins",
            "must give [low, high] for every class in dataset.classes (or be null)",
        )
        for c, b in bins.items():
            _need(
                isinstance(b, list)
                and len(b) == 2
                and isinstance(b[0], int)
                and (b[1] is None or (isinstance(b[1], int) and b[1] >= b[0])),
                where,
                f"dataset.lesion_bins.{c}",
                "must be [low, high] integers (high may be null)",
            )

    raw = p["raw"]
    _need(
        isinstance(raw.get("source"), str) and raw["source"] != "",
        where,
        "raw.source",
        "must be `demo` or a folder path",
    )
    _need(
        raw.get("on_bad_file", "skip") in ("skip", "error"), where, "raw.on_bad_file", "must be skip or error"
    )
    if raw["source"] == "demo":
        demo = raw.get("demo") or {}
        _need(
            isinstance(demo.get("scale", 1.0), (int, float)) and 0 < demo.get("scale", 1.0) <= 10,
            where,
            "raw.demo.scale",
            "must be a number in (0, 10]",
        )
        _need(bins is not None, where, "dataset.lesion_bins", "is required by the demo dataset")

    count = p["count"]
    split = count.get("split") or {}
    _need(set(split) == set(SPLITS), where, "count.split", "must give train, val and test fractions")
    _need(
        all(isinstance(v, (int, float)) and v > 0 for v in split.values())
        and math.isclose(sum(split.values()), 1.0, abs_tol=1e-6),
        where,
        "count.split",
        "fractions must be positive and sum to 1",
    )
    target = count.get("target") or {}
    _need(
        target.get("strategy") in TARGET_STRATEGIES,
        where,
        "count.target.strategy",
        f"must be one of {', '.join(TARGET_STRATEGIES)}",
    )
    if target["strategy"] == "fixed":
        _need(
            isinstance(target.get("n"), int) and target["n"] > 0,
            where,
            "count.target.n",
            "must be a positive integer for strategy fixed",
        )

    methods = p["synthesize"].get("methods")
    _need(
        isinstance(methods, dict) and methods,
        where,
        "synthesize.methods",
        "must map method names to shares, e.g. {lesion_edit: 1.0}",
    )
    _need(
        all(isinstance(v, (int, float)) and v >= 0 for v in methods.values())
        and math.isclose(sum(methods.values()), 1.0, abs_tol=1e-6),
        where,
        "synthesize.methods",
        f"shares must be >= 0 and sum to 1 (got {sum(methods.values())})",
    )

    train = p["train"]
    variants = train.get("variants")
    _need(isinstance(variants, dict) and variants, where, "train.variants", "must name at least one variant")
    _need(train.get("headline") in variants, where, "train.headline", "must name one of train.variants")
    _need(
        isinstance(train.get("steps"), int) and train["steps"] > 0,
        where,
        "train.steps",
        "must be a positive integer",
    )
    _need(
        isinstance(train.get("seeds"), list) and train["seeds"],
        where,
        "train.seeds",
        "must list at least one seed",
    )

    flip = p["flip"]
    _need(isinstance(flip.get("enabled"), bool), where, "flip.enabled", "must be true or false")
    _need(
        set(flip.get("splits", [])) <= set(SPLITS),
        where,
        "flip.splits",
        "must name splits among train, val, test",
    )
    if not p["fuse"].get("synthetic_in_eval", False):
        _need(
            set(flip.get("splits", [])) <= {"train"},
            where,
            "flip.splits",
            "may flip val/test only with fuse.synthetic_in_eval: true (they must stay real-only)",
        )
    if "release" in p:
        _validate_release(p["release"], where)


# `release` (optional): the DVC remote and quality gate of `rebalance release`.
RELEASE_DEFAULTS: dict[str, Any] = {
    "remote": None,  # None: the default remote of .dvc/config
    "gate": {
        "min_metrics": {"balanced_accuracy": 0.6},  # metrics/eval.json key -> minimum
        "max_imbalance": 2.0,  # largest / smallest class among data/fused train files
        "invariants": True,  # CONTRACT invariants of data/fused/manifest.csv
        "checksums": True,  # every data/fused file matches its manifest sha256
    },
}


def _validate_release(r: Any, where: str) -> None:
    _need(isinstance(r, dict), where, "release", "must be a mapping (remote, gate)")
    _need(
        r.get("remote") is None or isinstance(r["remote"], str),
        where,
        "release.remote",
        "must be a DVC remote name or null (the default remote)",
    )
    gate = r.get("gate") or {}
    _need(isinstance(gate, dict), where, "release.gate", "must be a mapping")
    mins = gate.get("min_metrics") or {}
    _need(
        isinstance(mins, dict) and all(isinstance(v, (int, float)) for v in mins.values()),
        where,
        "release.gate.min_metrics",
        "must map metrics/eval.json keys to minimum numbers",
    )
    imb = gate.get("max_imbalance")
    _need(
        imb is None or (isinstance(imb, (int, float)) and imb >= 1),
        where,
        "release.gate.max_imbalance",
        "must be a number >= 1 (or null to skip)",
    )
    for key in ("invariants", "checksums"):
        _need(isinstance(gate.get(key, True), bool), where, f"release.gate.{key}", "must be true or false")


def release_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The `release` group with defaults filled in."""
    r = params.get("release") or {}
    gate = {**RELEASE_DEFAULTS["gate"], **(r.get("gate") or {})}
    return {"remote": r.get("remote", RELEASE_DEFAULTS["remote"]), "gate": gate}


def with_defaults(given: dict[str, Any] | None, defaults: dict[str, Any], key: str) -> dict[str, Any]:
    """A params group (`key`, dotted) merged over its owner's defaults; unknown keys are an error."""
    given = given or {}
    unknown = set(given) - set(defaults)
    if unknown:
        raise ParamsError(
            f"params.yaml: `{key}` has unknown keys {sorted(unknown)}; known: {', '.join(defaults)}"
        )
    return {**defaults, **given}


def lesion_bins(params: dict[str, Any]) -> dict[str, tuple[int, float]] | None:
    """Per-class inclusive lesion-count bins, with an open upper end as infinity; None if ungraded."""
    bins = params["dataset"].get("lesion_bins")
    if bins is None:
        return None
    return {c: (lo, math.inf if hi is None else hi) for c, (lo, hi) in bins.items()}


def grade_of(count: int, bins: dict[str, tuple[int, float]]) -> str | None:
    """The class whose lesion bin holds `count` (None if it falls between bins)."""
    for c, (lo, hi) in bins.items():
        if lo <= count <= hi:
            return c
    return None

"""The one loader of params.yaml: parse, validate the whole file against the schema, fill defaults.

`load()` returns a plain dict (what DVC also reads), every group and key present, defaults from
`rebalance.core.schema`. Any mistake is one line naming the key and the fix (YAML errors: the line).
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rebalance.core import images, params_errors
from rebalance.core.errors import RebalanceError
from rebalance.core.schema import METHODS, SPLITS, Params, source_kind

__all__ = ["SPLITS", "ParamsError", "load", "validate", "release_settings"]


class ParamsError(RebalanceError):
    pass


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml; return it as a plain dict with every default filled in."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{where}: invalid YAML ({problem}); fix that line") from None
    params = validate(raw or {}, str(path))
    images.set_fit(params["dataset"]["fit"])  # the one resize policy of every stage in this process
    return params


def validate(given: dict[str, Any], where: str = "params.yaml") -> dict[str, Any]:
    """Check `given` against the schema and the cross-key rules; return it with defaults filled."""
    if not isinstance(given, dict):
        raise ParamsError(f"{where}: must be a mapping of groups (dataset, raw, count, ...)")
    try:
        model = Params.model_validate(given)
    except ValidationError as err:
        raise ParamsError(f"{where}: {params_errors.describe(err.errors(), given)}") from None
    params = model.model_dump()
    _check(params, where)
    return params


METHOD_VARIANT = "balanced_{}"  # the per-generator evidence rows: one variant per synthesis method


def variants(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every classifier variant: `train.variants` and one `balanced_<method>` per method of
    `synthesize.methods` (real + that method's images only, balanced's per-class counts); the
    latter are trained by dvc.yaml's stage family train_method@<method>."""
    generated = {
        METHOD_VARIANT.format(m): {
            "data": "balanced",
            "augment": False,
            "weighted": False,
            "shuffle_labels": False,
            "method": m,
        }
        for m in params["synthesize"]["methods"]
    }
    return params["train"]["variants"] | generated


def release_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The `release` group (remote and gate), defaults filled in."""
    return validate(params)["release"]


def _need(cond: bool, where: str, key: str, message: str) -> None:
    if not cond:
        raise ParamsError(f"{where}: `{key}` {message}")


# ---- rules that tie keys together --------------------------------------------------------------


def _check(p: dict[str, Any], where: str) -> None:
    ds, classes = p["dataset"], p["dataset"]["classes"]
    _need(len(set(classes)) == len(classes), where, "dataset.classes", "must list distinct class names")
    for c in classes:
        _need(c != "" and "/" not in c, where, "dataset.classes", f"has bad name {c!r} (no '/', not empty)")
    bins = ds["lesion_bins"]
    if bins is not None:
        _need(
            set(bins) == set(classes),
            where,
            "dataset.lesion_bins",
            "must give [low, high] for every class in dataset.classes (or be null)",
        )
        for c, b in bins.items():
            _need(
                len(b) == 2 and b[0] is not None and (b[1] is None or b[1] >= b[0]),
                where,
                f"dataset.lesion_bins.{c}",
                "must be [low, high] integers with high >= low (high may be null)",
            )
    kind = source_kind(p["raw"]["source"])
    if kind == "demo":
        _need(bins is not None, where, "dataset.lesion_bins", "is required by the demo dataset")
    if kind != "folder":
        why = {
            "demo": "the demo",
            "csv": "a CSV source (its own columns are the metadata)",
            "npz": "an .npz source",
        }
        _need(ds["metadata"] is None, where, "dataset.metadata", f"must be null for {why[kind]}")
    for key in ("header", "split_files"):
        _need(
            kind == "csv" or not p["raw"]["csv"][key],
            where,
            f"raw.csv.{key}",
            "applies to a CSV or list source only (raw.source: a .csv, .tsv or .txt file); remove it",
        )
    _need(
        ds["group_pattern"] is None or ds["group_by"] is None,
        where,
        "dataset.group_pattern",
        "and dataset.group_by are both set; keep the one that names each image's patient",
    )
    if kind in ("folder", "npz", "demo"):
        _need(
            ds["group_by"] is None or ds["metadata"] is not None,
            where,
            "dataset.group_by",
            "names a column of dataset.metadata (or of a CSV source): set dataset.metadata to the CSV first",
        )

    split = p["count"]["split"]
    _need(
        math.isclose(sum(split.values()), 1.0, abs_tol=1e-6),
        where,
        "count.split",
        f"fractions must sum to 1 (got {sum(split.values()):g})",
    )

    methods = p["synthesize"]["methods"]
    _need(
        bool(methods), where, "synthesize.methods", "must map method names to shares, e.g. {lesion_edit: 1.0}"
    )
    for group in ("synthesize.methods", "count.seconds_per_image", "count.dollars_per_image"):
        first, second = group.split(".")
        for name in p[first][second]:
            near = difflib.get_close_matches(name, METHODS, n=1, cutoff=0.6)
            hint = f"did you mean `{near[0]}`? " if near else ""
            _need(
                name in METHODS,
                where,
                f"{group}.{name}",
                f"is not a method; {hint}methods: {', '.join(METHODS)}",
            )
    _need(
        math.isclose(sum(methods.values()), 1.0, abs_tol=1e-6),
        where,
        "synthesize.methods",
        f"shares must sum to 1 (got {sum(methods.values()):g})",
    )
    _need(
        methods.get("lesion_edit", 0) == 0 or bins is not None,
        where,
        "synthesize.methods.lesion_edit",
        "needs lesion-count grades (dataset.lesion_bins), which this dataset has not; "
        "use {diffusion: 1.0} (or gan)",
    )
    bank_grades = p["synthesize"]["lesion_edit"]["bank_grades"]
    _need(
        bank_grades is None or set(bank_grades) <= set(classes),
        where,
        "synthesize.lesion_edit.bank_grades",
        "must name classes of dataset.classes (or be null for the upper half)",
    )

    dt = p["diffusion_train"]
    halvings = 2 ** (len(dt["channels"]) - 1)
    _need(
        dt["resolution"] % halvings == 0,
        where,
        "diffusion_train.resolution",
        f"must be divisible by {halvings} (one halving per extra entry of channels)",
    )

    train = p["train"]
    taken = sorted(set(train["variants"]) & {METHOD_VARIANT.format(m) for m in methods})
    _need(
        not taken,
        where,
        "train.variants",
        f"must not define {', '.join(taken)}: balanced_<method> variants are made from synthesize.methods",
    )
    for name, spec in train["variants"].items():
        _need(
            spec["method"] is None or (spec["data"] == "balanced" and spec["method"] in methods),
            where,
            f"train.variants.{name}.method",
            "needs data: balanced and a method of synthesize.methods",
        )
    _need(
        train["headline"] in variants(p),
        where,
        "train.headline",
        f"must name a variant ({', '.join(variants(p))})",
    )
    _need(
        p["flip"]["enabled"] is False or set(p["flip"]["splits"]) <= set(SPLITS),
        where,
        "flip.splits",
        "must name splits among train, val, test",
    )
    if not p["fuse"]["synthetic_in_eval"]:
        _need(
            set(p["flip"]["splits"]) <= {"train"},
            where,
            "flip.splits",
            "may flip val/test only with fuse.synthetic_in_eval: true (they must stay real-only)",
        )
    for group in ("train", "diffusion_train", "gan_train", "sd_lora"):  # data-parallel training
        batch, processes = p[group]["batch_size"], p[group]["processes"]
        _need(
            batch % processes == 0,
            where,
            f"{group}.batch_size",
            f"({batch}) must be a multiple of {group}.processes ({processes}): every process takes "
            "an equal part of each batch",
        )

"""The one manifest format: one row per image file, with its whole derivation recorded.

Every stage that writes images writes a manifest with these columns:

- path:    the file, relative to the folder the manifest sits in
- split:   train / val / test
- label:   class name
- origin:  `real`, or the method that made the file (lesion_edit, diffusion, flip, ...)
- source:  the file it was made from (empty when made from noise). Raw images are named by
           their path relative to data/raw; derived files by their path in data/fused.
- root:    the raw image at the start of the chain (itself for a real file; empty from noise)
- sha256:  checksum of the file's bytes
- seed:    the seed that made it (empty for real files)
- cluster: the source cluster used to spread synthesis (empty when not applicable)
- detail:  JSON with method parameters (target lesion count, checkpoint hash, steps, ...)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rebalance.core.atomic import write_text
from rebalance.core.errors import RebalanceError

COLUMNS = ["path", "split", "label", "origin", "source", "root", "sha256", "seed", "cluster", "detail"]
FILENAME = "manifest.csv"
# A sharded release (fuse.format: shards, rebalance/dataset/shards.py) adds where each image's bytes
# are: the tar (relative to data/fused), the sample key in it, the byte offset and size there.
SHARD_COLUMNS = ["shard", "key", "offset", "size"]


NOT_SYNTHETIC = ("real", "flip")  # the origins that are no synthesis method


def synthetic(df: pd.DataFrame) -> pd.Series:
    """Per row: is it a generated image (its origin a synthesis method, neither real nor a flip)?"""
    return ~df.origin.isin(NOT_SYNTHETIC)


def row(**fields: Any) -> dict[str, str]:
    """A manifest row; unknown keys are an error, missing ones empty, `detail` JSON-encoded."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown manifest columns: {sorted(unknown)}")
    out = {c: "" for c in COLUMNS}
    for key, value in fields.items():
        if key == "detail" and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True)
        out[key] = "" if value is None else str(value)
    return out


def frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS, dtype=str)
    return df.sort_values("path", kind="stable").reset_index(drop=True)


def read(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise RebalanceError(f"{path}: manifest not found; run `dvc repro` to build it")
    return parse(path, path)


def parse(source, name: str | Path) -> pd.DataFrame:
    """A manifest from a path or a binary file object (`name` in errors): the CONTRACT columns
    (and the shard columns where present), every value a string."""
    df = pd.read_csv(source, dtype=str, keep_default_na=False)
    path = name
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise RebalanceError(f"{path}: manifest lacks columns {missing}; rebuild it with `dvc repro`")
    return df[COLUMNS + [c for c in SHARD_COLUMNS if c in df.columns]]


def write(df: pd.DataFrame | list[dict[str, str]], path: str | Path) -> None:
    """Write a manifest atomically, rows sorted by path (so identical runs give identical bytes);
    the shard columns are kept when present."""
    if not isinstance(df, pd.DataFrame):
        df = frame(df)
    df = df[COLUMNS + [c for c in SHARD_COLUMNS if c in df.columns]].sort_values("path", kind="stable")
    write_text(path, df.to_csv(index=False, lineterminator="\n"))


def nested_counts(df: pd.DataFrame, columns: list[str]) -> dict:
    """Row counts nested by `columns`, e.g. ["split", "label", "origin"] -> {split: {label: {origin: n}}}."""
    out: dict = {}
    for keys, n in df.groupby(columns).size().items():
        keys = keys if isinstance(keys, tuple) else (keys,)
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = int(n)
    return out


def check_invariants(df: pd.DataFrame, synthetic_in_eval: bool = False) -> list[str]:
    """The CONTRACT invariants; returns the violations (empty list when all hold)."""
    problems: list[str] = []
    real = df[df.origin == "real"]
    derived = df[df.origin != "real"]
    if not synthetic_in_eval:
        bad = df[(df.split != "train") & (df.origin != "real")]
        problems += [
            f"{r.path}: {r.origin} file in {r.split} (val/test must be real-only)" for r in bad.itertuples()
        ]
        bad = derived[derived.split != "train"]
        problems += [f"{r.path}: derived file outside train" for r in bad.itertuples()]
    train_roots = set(real[real.split == "train"].root)
    bad = derived[(derived.root != "") & ~derived.root.isin(train_roots)]
    if not synthetic_in_eval:
        problems += [f"{r.path}: root {r.root} is not a train real image" for r in bad.itertuples()]
    splits_per_raw = real.groupby("root").split.nunique()
    problems += [
        f"{name}: raw image in more than one split" for name in splits_per_raw[splits_per_raw > 1].index
    ]
    split_of_path = dict(zip(df.path, df.split))
    split_of_root = dict(zip(real.root, real.split))
    for r in df[df.origin == "flip"].itertuples():
        src_split = split_of_path.get(r.source, split_of_root.get(r.source))
        if src_split != r.split:
            problems.append(f"{r.path}: flip in {r.split} but its source {r.source} is in {src_split}")
    return problems

"""Structured labelling of real train images for the SD prompts (`rebalance annotate`), as the
ISIC 2024 SD+LoRA study did: each image gets lesion colour, size and shape, border and surrounding
skin tone (`annotate.attributes`), and the SD prompt builder (rebalance/synth/prompts.py) turns
them into its descriptive prompts.

The images: the real train images of data/fused/manifest.csv of `annotate.classes` (default: the
classes that get synthetic images, those with a deficit in metrics/counts.json `generated`),
addressed by row number; the app (the review app's token and host rules) serves nothing else.

The annotations file `annotations/<dataset.name>.csv`: one row per (path, annotator), path
relative to data/raw, then one column per attribute (empty: not chosen) and the time (UTC, ISO
8601). Saving a label replaces that annotator's row of the image and never another annotator's;
the file is rewritten whole and atomically under an exclusive lock, in time order (a changed
label moves to the end). So `synthesize.diffusion.sd.attributes: annotations/<dataset.name>.csv`
works as it is: the prompt builder keys rows by path and the last row of a path wins, i.e. the
most recent label of an image, whoever gave it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from flask import Flask, abort, jsonify, render_template, request, send_file

from rebalance.config import Params
from rebalance.core import atomic, manifest, paths
from rebalance.core.errors import RebalanceError
from rebalance.dataset import shards
from rebalance.review import server, study
from rebalance.synth import prompts

FOLDER = Path("annotations")
KEYS = ["path", "annotator"]


def path_for(params: Params) -> Path:
    """annotations/<dataset.name>.csv"""
    return FOLDER / f"{params.dataset.name}.csv"


def columns(params: Params) -> list[str]:
    return [*KEYS, *params.annotate.attributes, "time"]


def classes_of(root: Path, params: Params, fused: pd.DataFrame) -> list[str]:
    """`annotate.classes`, else the classes with a deficit (metrics/counts.json `generated`), else
    (no counts yet) the classes with synthetic train images in the manifest."""
    known = params.dataset.classes
    if params.annotate.classes is not None:
        unknown = [c for c in params.annotate.classes if c not in known]
        if unknown:
            raise RebalanceError(f"annotate.classes: {', '.join(unknown)} not in dataset.classes")
        return list(params.annotate.classes)
    counts = Path(root) / paths.COUNTS
    if counts.is_file():
        generated = json.loads(counts.read_text()).get("generated", {})
        return [c for c in known if sum((generated.get(c) or {}).values()) > 0]
    synthetic = fused[(fused.split == "train") & manifest.synthetic(fused)]
    return [c for c in known if c in set(synthetic.label)]


def images(root: Path, params: Params) -> pd.DataFrame:
    """The rows to label: real train images of the classes, by their path in data/raw."""
    fused = manifest.read(Path(root) / paths.FUSED / manifest.FILENAME)
    chosen = classes_of(root, params, fused)
    rows = fused[(fused.split == "train") & (fused.origin == "real") & fused.label.isin(chosen)]
    rows = rows.assign(raw=rows.source.where(rows.source != "", rows.root))
    return rows.sort_values(["label", "raw"], kind="stable").reset_index(drop=True)


def read(path: Path) -> pd.DataFrame:
    """Every label so far (an empty frame when there is no file)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=[*KEYS, "time"], dtype=str)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise RebalanceError(f"{path}: cannot read the annotations ({str(err).splitlines()[0]})") from None
    missing = set(KEYS) - set(table.columns)
    if missing:
        raise RebalanceError(f"{path}: annotations lack columns {', '.join(sorted(missing))}")
    return table


def check(params: Params, values: dict) -> dict[str, str]:
    """`values` as {attribute: value}, every attribute given ("" when not chosen); a key that is not
    an attribute or a value not among its choices is an error."""
    if not isinstance(values, dict):
        raise RebalanceError("attribute values must be a mapping")
    attrs = params.annotate.attributes
    unknown = [k for k in values if k not in attrs]
    if unknown:
        raise RebalanceError(f"{', '.join(map(str, unknown))}: not an attribute ({', '.join(attrs)})")
    out = {}
    for name, allowed in attrs.items():
        value = values.get(name) or ""
        if value != "" and value not in allowed:
            raise RebalanceError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        out[name] = value
    return out


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the annotations folder (two servers, two annotators, one file)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def save(path: Path, params: Params, image: str, annotator: str, values: dict) -> dict:
    """Set `annotator`'s labels of `image` (its path in data/raw): that row replaced, moved last."""
    values = check(params, values)
    if not any(values.values()):
        raise RebalanceError("choose a value for at least one attribute")
    annotator = " ".join(str(annotator).split())[:80] or "anonymous"
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    row = {"path": image, "annotator": annotator, **values, "time": now}
    path = Path(path)
    with _locked(path.parent):
        table = read(path)
        table = table[~((table.path == image) & (table.annotator == annotator))]
        cols = columns(params) + [c for c in table.columns if c not in columns(params)]
        table = pd.concat([table, pd.DataFrame([row], dtype=str)], ignore_index=True)
        table = table.reindex(columns=cols).fillna("")
        atomic.write_text(path, table.to_csv(index=False, lineterminator="\n"))
    return row


def agreement(table: pd.DataFrame, a: str, b: str, attributes: list[str]) -> dict[str, dict]:
    """Per attribute, Cohen's kappa (scikit-learn's cohen_kappa_score; 1 when both gave every image
    the same one value) of annotators `a` and `b` over the images both labelled with a value for
    it: {attribute: {"kappa": float or None (no such image), "n": images}}."""
    one = table[table.annotator == a].drop_duplicates("path", keep="last").set_index("path")
    two = table[table.annotator == b].drop_duplicates("path", keep="last").set_index("path")
    both = one.index.intersection(two.index)
    out = {}
    for name in attributes:
        if name not in table.columns:
            out[name] = {"kappa": None, "n": 0}
            continue
        x, y = one.loc[both, name], two.loc[both, name]
        given = (x != "") & (y != "")
        n = int(given.sum())
        kappa = round(study.cohen_kappa(list(x[given]), list(y[given])), 4) if n else None
        out[name] = {"kappa": kappa, "n": n}
    return out


def agreements(table: pd.DataFrame, attributes: list[str]) -> list[dict]:
    """Every pair of annotators (alphabetical): [{"a", "b", "attributes": agreement(...)}]."""
    names = sorted(set(table.annotator)) if len(table) else []
    return [
        {"a": a, "b": b, "attributes": agreement(table, a, b, attributes)}
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]


def agreement_table(pairs: list[dict]) -> str:
    """`rebalance annotate --agreement`: a Markdown table, one row per pair and attribute."""
    if not pairs:
        return "No two annotators yet: agreement needs labels from two annotators.\n"
    lines = ["| annotators | attribute | Cohen's kappa | images |", "|---|---|---:|---:|"]
    for pair in pairs:
        for name, cell in pair["attributes"].items():
            kappa = "n/a" if cell["kappa"] is None else f"{cell['kappa']:.4f}"
            lines.append(f"| {pair['a']} / {pair['b']} | {name} | {kappa} | {cell['n']} |")
    return "\n".join(lines) + "\n"


def prompt(params: Params, values: dict[str, str], label: str) -> str:
    """The prompt the SD prompt builder makes from these labels (the annotations file's row)."""
    sd = params.synthesize.diffusion.sd
    chosen = {k: v for k, v in values.items() if v}
    return prompts.prompt_for(chosen, label, params.dataset.classes, sd.prompt)


def create_app(root: Path, params: Params, token: str, annotator: str = "") -> Flask:
    """The labelling app for the built repository at `root`."""
    root = Path(root)
    rows = images(root, params)
    file = root / path_for(params)
    attrs = params.annotate.attributes
    app = server.guard(Flask(__name__), token)

    def row(i) -> pd.Series:
        try:
            i = int(i)
        except (TypeError, ValueError):
            abort(400)
        if not 0 <= i < len(rows):
            abort(404)
        return rows.iloc[i]

    def values_of(body: dict) -> dict[str, str]:
        try:
            return check(params, body.get("values", {}))
        except RebalanceError:
            abort(400)

    @app.get("/")
    def index():
        return render_template(
            "annotate.html", token=token, annotator=annotator, title=params.dataset.name,
            attributes=list(attrs.items()), file=path_for(params).as_posix(),
            reads=params.synthesize.diffusion.sd.attributes or "",
        )  # fmt: skip

    @app.get("/api/items")
    def items_list():
        who = request.args.get("annotator", "").strip() or "anonymous"
        table = read(file)
        mine = table[table.annotator == who].drop_duplicates("path", keep="last")
        given = {r["path"]: {k: r.get(k, "") for k in attrs} for r in mine.to_dict("records")}
        return jsonify(
            [{"id": i, "label": r.label, "path": r.raw, "values": given.get(r.raw)}
             for i, r in enumerate(rows.itertuples())]
        )  # fmt: skip

    @app.get("/image/<int:i>")
    def image(i: int):
        r = row(i)
        data = shards.read_bytes(root / paths.FUSED, r)  # a file or a shard's sample
        return send_file(io.BytesIO(data), download_name=Path(r.path).name)  # its type from its name

    @app.post("/api/prompt")
    def preview():
        body = request.get_json(force=True, silent=True) or {}
        r = row(body.get("id", -1))
        return jsonify({"prompt": prompt(params, values_of(body), r.label)})

    @app.post("/api/label")
    def label():
        body = request.get_json(force=True, silent=True) or {}
        r = row(body.get("id", -1))
        values = values_of(body)
        if not any(values.values()):
            abort(400)
        saved = save(file, params, r.raw, str(body.get("annotator", "")), values)
        return jsonify({"ok": True, "id": int(body["id"]), "annotator": saved["annotator"],
                        "prompt": prompt(params, values, r.label)})  # fmt: skip

    @app.get("/api/agreement")
    def agree():
        return jsonify(agreements(read(file), list(attrs)))

    return app

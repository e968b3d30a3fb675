"""The review and reader-study web app (Flask), bound to 127.0.0.1 by default, every request
checked against a random token (query `token` or header `X-Token`).

It serves only images listed in data/fused/manifest.csv, addressed by their row number (no
path ever comes from a request, so nothing else on disk can be reached), and writes only
reviews/<dataset.name>.csv (review) and metrics/reader_study*.{csv,json} (reader study). The
pages are Jinja templates in templates/ (HTML and a little JavaScript, no build step), autoescaped.
"""

from __future__ import annotations

import io
import secrets
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from flask import Flask, abort, jsonify, render_template, request, send_file
from PIL import Image

from rebalance.config import Params
from rebalance.core import atomic, manifest, paths
from rebalance.core.images import load_array
from rebalance.dataset import shards
from rebalance.review import decisions, study

ANSWERS = paths.METRICS / "reader_study_answers.csv"
REPORT = paths.METRICS / "reader_study.json"


def new_token() -> str:
    return secrets.token_urlsafe(16)


def _png(array: np.ndarray) -> io.BytesIO:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    buf.seek(0)
    return buf


def edit_mask(made: np.ndarray, source: Path, fit: str) -> np.ndarray | None:
    """The pixels an edit changed (white): the image against its source as the generator saw it.
    A local edit keeps every other pixel of that copy byte for byte. The generator worked on the
    source as it is (lesion edits), or brought to the square side of its output by `dataset.fit`
    (diffusion); None when neither matches the image's size (the page then leaves the pane out)."""
    original = load_array(source)
    if made.shape != original.shape and made.shape[0] == made.shape[1]:
        original = load_array(source, made.shape[0], fit)  # the generator's working copy
    if made.shape != original.shape:
        return None
    return np.where((made != original).any(-1), 255, 0).astype(np.uint8)


def guard(app: Flask, token: str) -> Flask:
    """Refuse (403) every request of `app` without `token` (query `token` or header `X-Token`)."""

    @app.before_request
    def check_token():
        given = request.args.get("token") or request.headers.get("X-Token", "")
        if not secrets.compare_digest(given, token):
            abort(403)

    return app


def create_app(root: Path, params: Params, token: str, mode: str = "review", reviewer: str = "") -> Flask:
    """The app for the built repository at `root` ("review" or "study" mode)."""
    root = Path(root)
    fused = manifest.read(root / paths.FUSED / manifest.FILENAME)
    synthetic = fused[(fused.split == "train") & manifest.synthetic(fused)].reset_index(drop=True)
    reviews = root / decisions.path_for(params)
    cfg = params.review.reader_study
    items = study.sequence(fused, cfg.classes, cfg.real, cfg.synthetic, cfg.seed)
    by_path = {r.path: r for r in fused.itertuples()}
    app = guard(Flask(__name__), token)

    def row(i: int) -> pd.Series:
        if not 0 <= i < len(synthetic):
            abort(404)
        return synthetic.iloc[i]

    @app.get("/")
    def index():
        page = "review.html" if mode == "review" else "study.html"  # templates/ beside this file
        classes = params.dataset.classes
        return render_template(
            page, token=token, reviewer=reviewer, classes=classes, title=params.dataset.name
        )

    @app.get("/api/items")
    def items_list():
        final = decisions.latest(decisions.read(reviews))
        return jsonify(
            [
                {"id": i, "label": r.label, "method": r.origin, "seed": r.seed, "path": r.path,
                 "source": r.source, "decision": final.get(r.sha256, "")}
                for i, r in enumerate(synthetic.itertuples())
            ]
        )  # fmt: skip

    @app.get("/image/<int:i>/<which>")
    def image(i: int, which: str):
        r = row(i)
        made = shards.read_bytes(root / paths.FUSED, r)  # a file or a shard's sample
        if which == "synthetic":
            return send_file(io.BytesIO(made), mimetype="image/png")
        if not r.source:
            abort(404)
        source = root / paths.RAW / r.source
        if which == "source":
            return send_file(_png(load_array(source)), mimetype="image/png")
        if which == "mask":
            mask = edit_mask(load_array(r.path, data=made), source, params.dataset.fit)
            return send_file(_png(mask), mimetype="image/png") if mask is not None else abort(404)
        abort(404)

    @app.post("/api/decide")
    def decide():
        body = request.get_json(force=True, silent=True) or {}
        r = row(int(body.get("id", -1)))
        if body.get("decision") not in decisions.DECISIONS:
            abort(400)
        decisions.append(reviews, r.sha256, r.path, str(body.get("reviewer", ""))[:80],
                         body["decision"], str(body.get("reason", ""))[:500])  # fmt: skip
        return jsonify({"ok": True, "id": int(body["id"]), "decision": body["decision"]})

    @app.get("/api/study/items")
    def study_items():
        return jsonify([{"item": it["item"]} for it in items])  # blinded: no kind, class or path

    @app.get("/study/image/<int:k>")
    def study_image(k: int):
        if not 0 <= k < len(items):
            abort(404)
        data = shards.read_bytes(root / paths.FUSED, by_path[items[k]["path"]])
        return send_file(io.BytesIO(data), mimetype="image/png")

    @app.post("/api/study/answer")
    def answer():
        body = request.get_json(force=True, silent=True) or {}
        k, reader = int(body.get("item", -1)), str(body.get("reader", "")).strip()[:80]
        if not 0 <= k < len(items) or not reader or body.get("answer") not in study.KINDS:
            abort(400)
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        row_out = {"reader": reader, "item": k, "answer": body["answer"],
                   "class_answer": str(body.get("class_answer", ""))[:80], "time": when}  # fmt: skip
        decisions.append_row(root / ANSWERS, row_out, study.ANSWERS_COLUMNS)
        answers = pd.read_csv(root / ANSWERS, dtype=str, keep_default_na=False)
        atomic.write_json(root / REPORT, study.report(items, answers))
        done = answers[answers.reader == reader]["item"].nunique()
        return jsonify({"ok": True, "answered": int(done), "total": len(items)})

    @app.get("/api/study/progress")
    def progress():
        reader = request.args.get("reader", "")
        if not (root / ANSWERS).is_file():
            return jsonify({"answered": []})
        answers = pd.read_csv(root / ANSWERS, dtype=str, keep_default_na=False)
        return jsonify({"answered": sorted(int(k) for k in set(answers[answers.reader == reader]["item"]))})

    return app


def serve(app: Flask, host: str, port: int):
    """A threaded WSGI server (werkzeug) for `app`; call .serve_forever() on it."""
    from werkzeug.serving import make_server

    return make_server(host, port, app, threaded=True)

"""Curated synthesis: every generated image judged, the ones the filter rejects generated again.

Stage synthesize hands each method's images of a class to `Curator.curate`. Each new image gets
the judge's scores (rebalance/synth/judge.py) and its nearest real train image by perceptual hash
(its own source left out); the filter (`synthesize.filter`) rejects an image that its class's real
val images mostly beat on the judge's probability, that lies farther from the class than nearly
all of them, or that copies a real train image. A rejected slot takes the next sub-seed (the same
mechanism as a reviewer's rejection, rebalance/synth/base.py) and is generated and judged again,
up to `max_tries` times, then left empty (as is a slot its method made no image for: a command or
plugin that wrote none). Every kept row's `detail` holds its scores under
`judge` with the tries it took and the filter's fingerprint; a later run reuses the image with
its scores (never judged again) while the judge and the filter are unchanged.
Deterministic: the same seeds, judge and params keep the same images.

The unfiltered set: a slot's first try, when the filter rejected it, is kept aside in
`<out>/unfiltered/<path>` with its scores (`Outcome.first`); with the kept first tries, it is what
the release would hold without the filter, which the `balanced_unfiltered` variant trains on so
that the evidence says whether curation helped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rebalance.config.synth import Filter
from rebalance.core.errors import RebalanceError
from rebalance.core.hashing import sha256_bytes, sha256_text
from rebalance.core.images import load_array
from rebalance.learn.data import image_set
from rebalance.synth import quality
from rebalance.synth.base import Context, Method, output_path
from rebalance.synth.judge import FILE, Judge

SHEET = 8  # images per row of a contact sheet
UNFILTERED = "unfiltered"  # <out>/unfiltered/<path>: a slot's rejected first try
WHY = {"class": "unlike its class", "distance": "far from its class", "near_copy": "copies a train image"}


@dataclass
class Outcome:
    """One method's slots of one class after the filter."""

    planned: int = 0
    kept: int = 0
    regenerated: int = 0  # slots that took more than one try
    empty: int = 0  # slots left empty after max_tries
    reasons: dict[str, int] = field(default_factory=dict)  # rejections (every try) by reason
    kept_images: list[np.ndarray] = field(default_factory=list)  # a few, for the contact sheet
    rejected_images: list[tuple[np.ndarray, str]] = field(default_factory=list)
    first: dict[str, dict] = field(default_factory=dict)  # path -> row of a rejected first try

    def report(self) -> dict:
        return {
            "planned": self.planned, "kept": self.kept, "regenerated": self.regenerated,
            "empty": self.empty, "empty_share": round(self.empty / self.planned, 4) if self.planned else 0.0,
            "rejections": dict(sorted(self.reasons.items())),
        }  # fmt: skip


class Curator:
    def __init__(
        self,
        judge: Judge,
        judge_dir: Path,
        cfg: Filter | None,
        near_bits: int,
        train_hashes: dict[str, int],
        ctx: Context,
        sheet_px: int = 64,
    ):
        self.judge, self.cfg, self.near_bits, self.ctx = judge, cfg, near_bits, ctx
        self.size, self.fit = judge.meta["image_size"], judge.meta["fit"]
        self.train_paths = list(train_hashes)
        self.train_words = np.array(list(train_hashes.values()), dtype=np.uint64)
        self.index = {p: i for i, p in enumerate(self.train_paths)}
        self.sheet_px = sheet_px
        given = cfg.model_dump() if cfg else None
        self.fingerprint = sha256_text(
            json.dumps(
                {
                    "judge": sha256_bytes((judge_dir / FILE).read_bytes()),
                    "filter": given,
                    "near_bits": near_bits,
                },
                sort_keys=True,
            )  # fmt: skip
        )[:16]

    # ---- what a run reuses -------------------------------------------------------------------

    def tries_before(self, old: dict[str, dict], old_first: set[str]) -> dict[str, int]:
        """The tries each slot of the last run took, for rows judged under this judge and filter
        whose rejected first try was kept (`old_first`): added to a slot's retries, its stored
        image's cache key matches again (reused, with its scores). Under another judge or filter,
        or without its first try, a slot starts from its first sub-seed."""
        out = {}
        for path, row in old.items():
            scores = _detail(row).get("judge") or {}
            if scores.get("filter") == self.fingerprint and scores.get("tries") and path in old_first:
                out[path] = int(scores["tries"])
        return out

    # ---- judging -----------------------------------------------------------------------------

    def scores(self, rows: list[dict], out_dir: Path) -> list[dict]:
        """The judge's scores and the nearest real train image's hash distance of rows whose files
        are in `out_dir`."""
        if not rows:
            return []
        labels = np.array([self.judge.classes.index(r["label"]) for r in rows])
        images = image_set(out_dir, [r["path"] for r in rows], self.size, self.fit, 256)
        judged = self.judge.score(images, labels)
        words = quality.pack(quality.phash_files([out_dir / r["path"] for r in rows], "judge", 1))
        own = np.array([self.index.get(r["source"], -1) for r in rows])
        bits, _ = quality.nearest_words(words, self.train_words, own)
        return [j | {"nearest_bits": int(b)} for j, b in zip(judged, bits)]

    def min_p(self, label: str) -> float:
        """The lowest judge probability of `label` kept: the class's real val images' percentile
        `min_class_percentile`, or 0.5 where that is higher (a judge sure of every real image would
        otherwise reject images it also calls `label`, only less surely)."""
        ref = self.judge.reference.get(label, {}).get("p", np.zeros(0))
        return min(float(np.percentile(ref, self.cfg.min_class_percentile)), 0.5) if len(ref) else 0.0

    def reason(self, s: dict, label: str) -> str | None:
        """Why the filter rejects an image of `label` with scores `s`, or None when it is kept."""
        cfg = self.cfg
        if cfg is None:
            return None
        if s["p"] < self.min_p(label):
            return "class"
        if s["distance_pct"] is not None and s["distance_pct"] > cfg.max_distance_percentile:
            return "distance"
        if cfg.reject_near_copies and s["nearest_bits"] <= self.near_bits:
            return "near_copy"
        return None

    # ---- the loop ----------------------------------------------------------------------------

    def curate(
        self, method: Method, name: str, label: str, n: int, rows: list[dict], out_dir: Path,
        restore: Callable[[str, Path], dict | None] = lambda path, dst: None,
    ) -> tuple:  # fmt: skip
        """`rows` (the slots 0..n-1 of `label` by `method`, files in `out_dir`) judged; rejected slots
        generated again with the next sub-seed. (kept rows with their scores in `detail`, Outcome).
        A rejected first try goes to `out_dir/unfiltered/<path>`; for a reused slot that took more
        than one try, `restore(path, destination)` puts the last run's there and gives its row."""
        index = {output_path(name, label, i): i for i in range(n)}
        done = {
            r["path"]: r for r in rows if (_detail(r).get("judge") or {}).get("filter") == self.fingerprint
        }
        todo = [r for r in rows if r["path"] not in done]
        outcome = Outcome(planned=n)
        outcome.empty = n - len({r["path"] for r in rows})  # slots a method made no image for
        for r in done.values():  # reused with its scores: its slot's rejections count as when made
            for why in _detail(r)["judge"].get("rejected", []):
                outcome.reasons[why] = outcome.reasons.get(why, 0) + 1
            if _detail(r)["judge"].get("tries"):
                outcome.first[r["path"]] = restore(r["path"], out_dir / UNFILTERED / r["path"]) or _lost(r)
        tries = {r["path"]: 0 for r in todo}
        history: dict[str, list[str]] = {r["path"]: [] for r in todo}  # each try's reason, in order
        while todo:
            again = []
            for r, s in zip(todo, self.scores(todo, out_dir)):
                why = self.reason(s, label)
                if why is None:
                    took = {
                        "tries": tries[r["path"]],
                        "rejected": history[r["path"]],
                        "filter": self.fingerprint,
                    }
                    done[r["path"]] = _with_scores(r, s | took)
                    continue
                history[r["path"]].append(why)
                outcome.reasons[why] = outcome.reasons.get(why, 0) + 1
                if tries[r["path"]] == 0:  # the first try: what the release would hold unfiltered
                    aside = out_dir / UNFILTERED / r["path"]
                    aside.parent.mkdir(parents=True, exist_ok=True)
                    (out_dir / r["path"]).replace(aside)
                    scores = s | {"tries": 0, "rejected": [why], "filter": self.fingerprint}
                    outcome.first[r["path"]] = _with_scores(r, scores)
                else:
                    (out_dir / r["path"]).unlink()
                if tries[r["path"]] < (self.cfg.max_tries if self.cfg else 0):
                    again.append(r["path"])
                else:
                    outcome.empty += 1
            todo = []
            for path in again:  # the next sub-seed of each rejected slot (base.Context.seed)
                tries[path] += 1
                self.ctx.retries[path] = self.ctx.retries.get(path, 0) + 1
            if again:
                made = method.generate(label, sorted(index[p] for p in again))
                todo = [_with_key(r, method.cache_key(label, index[r["path"]])) for r in made]
                outcome.empty += len(again) - len(todo)  # no image made for the new sub-seed
        kept = [done[p] for p in sorted(done)]
        outcome.kept = len(kept)
        outcome.regenerated = sum(1 for r in kept if _detail(r)["judge"]["tries"] > 0)
        outcome.kept_images = [self._thumb(out_dir / r["path"]) for r in kept[:SHEET]]
        outcome.rejected_images = [  # the first rejected first tries by path: the same in a re-run
            (self._thumb(out_dir / UNFILTERED / p), _detail(outcome.first[p])["judge"]["rejected"][0])
            for p in sorted(outcome.first)[:SHEET]
        ]
        return kept, outcome

    def _thumb(self, path: Path) -> np.ndarray:
        return load_array(path, self.sheet_px, self.fit)


def _lost(row: dict) -> dict:
    raise RebalanceError(
        f"data/synthesized: the first try of {row['path']} is missing; run `dvc repro -f synthesize`"
    )


def _detail(row: dict) -> dict:
    try:
        return json.loads(row.get("detail") or "{}")
    except ValueError:
        return {}


def _with_scores(row: dict, scores: dict) -> dict:
    return {**row, "detail": json.dumps({**_detail(row), "judge": scores}, sort_keys=True)}


def _with_key(row: dict, key: str) -> dict:
    return {**row, "detail": json.dumps({**_detail(row), "key": key}, sort_keys=True)}


def contact_sheet(label: str, method: str, outcome: Outcome, path: Path) -> None:
    """Kept images above rejected ones (each titled with its reason), for one method and class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rebalance.core import atomic

    rows = [("kept", [(im, "") for im in outcome.kept_images]), ("rejected", outcome.rejected_images)]
    fig, axes = plt.subplots(2, SHEET, figsize=(1.3 * SHEET, 3.2), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(SHEET):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c][0])
                if images[c][1]:  # the reason, under the rejected image
                    ax.text(
                        0.5,
                        -0.04,
                        WHY[images[c][1]],
                        transform=ax.transAxes,
                        ha="center",
                        va="top",
                        fontsize=7,
                    )
        axes[r][0].text(-0.1, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8)
    o = outcome
    fig.suptitle(
        f"{label} by {method}: {o.kept} of {o.planned} slots kept ({o.regenerated} after new seeds), "
        f"{o.empty} empty; rejections: "
        + (", ".join(f"{k} {v}" for k, v in sorted(o.reasons.items())) or "none"),
        fontsize=9,
    )
    fig.tight_layout()
    atomic.write_figure(path, fig)
    plt.close(fig)

"""The release's data card: a Markdown page committed as `releases/<tag>.md` before the tag.

`data_card` joins one block per section (each block starts with its blank separator line):
the release table, class balance, methods, headline metrics, variants, provenance, gate, use.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from rebalance.config import SPLITS, Params
from rebalance.core import manifest, paths
from rebalance.core.tables import markdown_table
from rebalance.dataset import plan
from rebalance.learn.metrics import measured
from rebalance.registry import testset
from rebalance.registry.remote import safe_url

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")
PER_CLASS = ("precision", "recall", "f1", "support")


def card_path(tag: str) -> str:
    """The data card's path relative to the repository root (posix, as git takes it)."""
    return f"{paths.RELEASE_CARDS.as_posix()}/{tag}.md"


def lock_out(root: Path, path: str) -> dict[str, Any]:
    """The `outs` entry of `path` in dvc.lock (md5, size, nfiles); {} if no stage outputs it."""
    lock = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path:
                return out
    return {}


def _fused_table(fused, classes: list[str]) -> str:
    rows = []
    for s in (*SPLITS, "total"):
        part = fused if s == "total" else fused[fused.split == s]
        n = [int((part.label == c).sum()) for c in classes]
        ratio = f"1:{max(n) / min(n):.2f}" if min(n) > 0 else "n/a"
        rows.append([s, sum(n), *n, ratio])
    return markdown_table(["split", "files", *classes, "max:min"], rows)


def _origin_table(fused) -> str:
    origins = ["real"] + sorted(set(fused.origin) - {"real"})
    rows = []
    for o in origins:
        part = fused[fused.origin == o]
        rows.append([o, *[int((part.split == s).sum()) for s in SPLITS], len(part)])
    rows.append(["total", *[int((fused.split == s).sum()) for s in SPLITS], len(fused)])
    return markdown_table(["origin", *SPLITS, "total"], rows)


def _metric_with_ci(evalm: dict[str, Any], key: str) -> str:
    value = evalm.get(key)
    if not isinstance(value, (int, float)):
        return "n/a"
    ci = (evalm.get("ci95") or {}).get(key)
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _release_table(
    tag: str,
    commit: str,
    remote: str,
    remote_url: str,
    artifacts: dict[str, tuple[str, str]],
    fused_out: dict[str, Any],
    n_files: int,
) -> str:
    name = tag.split("@", 1)[0]
    fused = paths.FUSED.as_posix()
    out = fused_out
    return markdown_table(
        ["", ""],
        [
            ["release tag", f"`{tag}`"],
            ["date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")],
            ["built from commit", f"`{commit}`"],
            [
                "dataset artifact",
                f"`{name}` = `{fused}` (md5 `{out.get('md5', '?')}`, "
                f"{out.get('nfiles', n_files + 1)} files, {out.get('size', '?')} bytes)",
            ],
            *[[f"{kind} artifact", f"`{n}` = `{p}`"] for n, (kind, p) in artifacts.items() if p != fused],
            ["DVC remote", f"`{remote}` ({safe_url(remote_url)})"],
        ],
    )


def _balance(counts: dict[str, Any], fused, classes: list[str], max_ratio: float) -> list[str]:
    notes = plan.group_lines(counts) + plan.drawn_lines(counts) + plan.sampled_lines(counts)
    notes += plan.quota_lines(counts)
    return [
        "",
        "## Class balance (train split)",
        "",
        "Original: real train images. Generated: images the synthesis methods add to reach the target. "
        "Total: the target per class (horizontal flips, if enabled, then double the train split). "
        "Synthetic per real: generated / original. Val and test hold real images only.",
        "",
        plan.balance_table(counts),
        *[line for w in plan.ratio_warnings(counts, max_ratio) for line in ("", f"Warning: {w}.")],
        "",
        "## Real images per split",
        "",
        plan.split_table(counts),
        *[line for note in notes for line in ("", note)],
        "",
        f"## Published files per split (`{paths.FUSED.as_posix()}`)",
        "",
        _fused_table(fused, classes),
    ]


def _kept(report: dict[str, Any] | None) -> list[str]:
    """What the synthesis filter kept of the planned images (metrics/filter.json), per class and method."""
    if not report or not report.get("per_method"):
        return []
    rows = [
        [label, method, o["planned"], o["kept"], o["regenerated"], o["empty"],
         ", ".join(f"{k} {v}" for k, v in o["rejections"].items()) or "none"]
        for method, per_class in sorted(report["per_method"].items())
        for label, o in sorted(per_class.items())
    ]  # fmt: skip
    cfg = report.get("filter")
    how = (
        "every image judged, none rejected (synthesize.filter: null)"
        if cfg is None
        else f"rejected below the {cfg['min_class_percentile']:g}th percentile of the real val images' judge "
        f"probability (and 0.5), beyond their {cfg['max_distance_percentile']:g}th distance percentile"
        + (", or copying a train image" if cfg["reject_near_copies"] else "")
        + f"; a rejected slot is generated again up to {cfg['max_tries']} times, then left empty"
    )
    return [
        "",
        "## Synthetic images kept",
        "",
        f"The judge (a classifier trained on real train images only) scored every generated image: {how}.",
        "",
        markdown_table(
            ["class", "method", "planned", "kept", "after new seeds", "empty", "rejections"], rows
        ),
    ]


def _methods(params: Params) -> list[str]:
    synth = params.synthesize.methods
    flip = params.flip
    count = params.count
    return [
        "",
        "## Methods",
        "",
        "- synthesis: "
        + ", ".join(f"`{m}` {share:.0%} of each class's deficit" for m, share in synth.items()),
        "- horizontal flips: " + ("on, splits " + ", ".join(flip.splits) if flip.enabled else "off"),
        f"- synthetic files in val/test: {'yes' if params.fuse.synthetic_in_eval else 'no'}",
        "- generator models: "
        + (
            "**external models allowed** (`synthesize.allow_external_model: true`): a generator without a "
            "record of its training images may have seen val/test images"
            if params.synthesize.allow_external_model
            else "only models with a record of their training images, none of them val/test"
        ),
        f"- split: {', '.join(f'{s} {f:g}' for s, f in count.split.model_dump().items())}, "
        f"seed {count.seed}; target strategy `{count.target.strategy}`"
        + (f" (n = {count.target.n})" if count.target.n else ""),
    ]


def _headline(evalm: dict[str, Any], params: Params, classes: list[str]) -> list[str]:
    per_class = evalm.get("per_class") or {}
    return [
        "",
        "## Headline metrics (test split, real images)",
        "",
        f"Variant `{evalm.get('variant', params.train.headline)}`: mean over seeds "
        f"{evalm.get('seeds', '?')} on {evalm.get('n_test', '?')} test images; 95% intervals from a "
        "two-level bootstrap (training seeds, then test images within each true class) of the "
        "seed-pooled predictions (probabilities averaged over seeds).",
        "",
        markdown_table(["metric", "value"], [[k, _metric_with_ci(evalm, k)] for k in HEADLINE]),
        "",
        markdown_table(
            ["class", *PER_CLASS],
            [[c, *[measured(per_class).get(c, {}).get(k) for k in PER_CLASS]] for c in classes],
        ),
    ]


def _evidence(summary_md: str | None) -> list[str]:
    """metrics/summary.md (the generated verdict, then the variants), its headings one level down."""
    if not summary_md:
        return []
    return ["", "## Evidence", "", re.sub(r"^(#+) ", r"#\1 ", summary_md.strip(), flags=re.M)]


def _provenance(fused) -> list[str]:
    real = fused[fused.origin == "real"]
    derived = fused[fused.origin != "real"]
    listing = (paths.FUSED / manifest.FILENAME).as_posix()
    return [
        "",
        "## Provenance",
        "",
        f"{len(real)} real files from {real.root.nunique()} raw images; {len(derived)} derived files from "
        f"{derived[derived.root != ''].root.nunique()} train images. Every file's origin, source, root "
        f"and sha256 are in `{listing}`.",
        "",
        _origin_table(fused),
    ]


def _review(params: Params, fused) -> list[str]:
    """Clinician review (reviews/<name>.csv) per class and method, and the reader study if run."""
    import json

    from rebalance.review import decisions

    synthetic = fused[(fused.split == "train") & ~fused.origin.isin(["real", "flip"])]
    done = decisions.summary(decisions.read(decisions.path_for(params)), synthetic)
    rows = [
        [label, method, c["n"], c["reviewed"], c["accepted"], c["rejected"]]
        for label, per in sorted(done["per_class"].items())
        for method, c in sorted(per.items())
    ]
    lines = ["", "## Clinician review", ""]
    where = decisions.path_for(params)
    share = f"{done['accepted_share']:.0%}"
    lines.append(
        f"{done['accepted']} of {done['n']} synthetic train images accepted by a reviewer "
        f"({share}; `{where}`)."
    )
    lines.append("")
    if rows:
        lines.append(markdown_table(["class", "method", "images", "reviewed", "accepted", "rejected"], rows))
    study = paths.METRICS / "reader_study.json"
    if study.is_file():
        s = json.loads(study.read_text())
        lo, hi = s["accuracy_ci95"]
        agree = s.get("agreement")
        items, kappa = s["items"], f"; {agree['measure']} {agree['kappa']}" if agree else ""
        readers = len(s["readers"])
        blinded = f"blinded, {items['real']} real + {items['synthetic']} synthetic images, {readers} readers"
        lines += ["", f"Reader study ({blinded}): accuracy {s['accuracy']} [{lo}, {hi}] (chance 0.5){kappa}."]
    return lines


def _gate(gate_rows: list[dict[str, Any]], synthetic_checked: bool) -> list[str]:
    rows = [[r["check"], r["value"], "pass" if r["ok"] else "FAIL"] for r in gate_rows]
    off = [] if synthetic_checked else [
        "", "The synthetic images' quality was not checked (`release.gate.synthetic: null`)."
    ]  # fmt: skip
    return ["", "## Release gate", "", markdown_table(["check", "value", "result"], rows), *off]


def _use_it(tag: str) -> list[str]:
    fused = paths.FUSED.as_posix()
    return [
        "",
        "## Use it",
        "",
        "```",
        f"dvc get <registry-url> {fused} --rev {tag}",
        f"dvc import <registry-url> {fused} --rev {tag}",
        "```",
        "",
        "Real images are the source files byte for byte, EXIF tags included; flips and synthetic",
        "images are stored already oriented. Apply a photo's EXIF orientation when reading it",
        "(PIL: `ImageOps.exif_transpose`), or an image and its flip will disagree.",
        "",
    ]


def data_card(
    *,
    tag: str,
    message: str | None,
    params: Params,
    counts: dict[str, Any],
    evalm: dict[str, Any],
    fused,
    gate_rows: list[dict[str, Any]],
    summary_md: str | None,
    commit: str,
    remote: str,
    remote_url: str,
    artifacts: dict[str, tuple[str, str]],
    fused_out: dict[str, Any],
    test_set: dict[str, Any] | None = None,
    kept: dict[str, Any] | None = None,
) -> str:
    """The release's data card (markdown): what is in it, how it was made, how good it is."""
    name, version = tag.split("@", 1)
    classes = params.dataset.classes
    lines = [
        f"# {name} {version}",
        "",
        message or f"Release {version} of the balanced dataset `{name}`.",
        "",
        _release_table(tag, commit, remote, remote_url, artifacts, fused_out, len(fused)),
        *_evidence(summary_md),
        *_balance(counts, fused, classes, params.count.max_synthetic_ratio),
        *_kept(kept),
        *_methods(params),
        *(testset.card_lines(test_set) if test_set else []),
        *_headline(evalm, params, classes),
        *_provenance(fused),
        *_review(params, fused),
        *_gate(gate_rows, params.release.gate.synthetic is not None),
        *_use_it(tag),
    ]
    return "\n".join(lines)

"""The dataset card, in the Hugging Face dataset-card format: YAML front matter, then Markdown.

Two pages share every section. Stage document writes `dataset_card` into the artifact
(`data/fused/README.md`), so every consumer of a release receives it; `rebalance release` commits
`data_card`, the same card under the release's name with what only the release knows (tag,
commit, remote, the test set against the previous release, what changed since it, the reader
study), as `releases/<tag>.md` before the tag. Each block starts with its blank separator line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from rebalance.config import SPLITS, Params
from rebalance.core import manifest, paths
from rebalance.core.tables import markdown_table
from rebalance.dataset import plan, shards
from rebalance.learn.metrics import measured
from rebalance.registry import testset
from rebalance.registry.remote import safe_url

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")
PER_CLASS = ("precision", "recall", "f1", "support")
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


@dataclass
class Build:
    """What a card reports of one build, read from the committed metrics and data/fused."""

    root: Path
    params: Params
    counts: dict[str, Any]  # metrics/counts.json
    evalm: dict[str, Any]  # metrics/eval.json
    summary: dict[str, Any]  # metrics/summary.json (the verdict)
    summary_md: str | None  # metrics/summary.md
    kept: dict[str, Any] | None  # metrics/filter.json
    test_set: dict[str, Any] | None  # metrics/test_set.json
    fused: pd.DataFrame  # data/fused/manifest.csv
    gate_rows: list[dict[str, Any]]

    @classmethod
    def read(cls, root: Path, params: Params) -> Build:
        from rebalance.registry.gate import gate

        def load(path: Path) -> Any:
            return json.loads((root / path).read_text()) if (root / path).is_file() else None

        evalm = load(paths.EVAL) or {}
        fused = manifest.read(root / paths.FUSED / manifest.FILENAME)
        md = root / paths.SUMMARY_MD
        return cls(
            root=root,
            params=params,
            counts=load(paths.COUNTS),
            evalm=evalm,
            summary=load(paths.SUMMARY) or {},
            summary_md=md.read_text() if md.is_file() else None,
            kept=load(paths.FILTER),
            test_set=load(paths.TEST_SET),
            fused=fused,
            gate_rows=gate(root, params, evalm, fused),
        )


def size_category(n: int) -> str:
    """The dataset-card size category of n files."""
    return next((name for limit, name in SIZES if n < limit), "n>1M")


def synthetic_share(fused: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    """Per class, the share of its train files that are synthetic (neither real nor a flip)."""
    train = fused[fused.split == "train"]
    out = {}
    for c in classes:
        part = train[train.label == c]
        out[c] = round(float(manifest.synthetic(part).mean()), 4) if len(part) else 0.0
    return out


def front_matter(build: Build) -> dict[str, Any]:
    """The Hugging Face dataset-card metadata (YAML), from params and the build."""
    params, fused = build.params, build.fused
    card = params.release.card
    synthetic = bool(manifest.synthetic(fused).any())
    made = ["machine-generated"] if synthetic else []
    creators = list(dict.fromkeys([*card.annotations_creators, *made]))
    files = "{split}/{split}-*.tar" if shards.is_sharded(fused) else "{split}/**"
    meta = {
        "pretty_name": card.pretty_name or params.dataset.name,
        "license": card.license,
        "task_categories": card.task_categories,
        "size_categories": [size_category(len(fused))],
        "annotations_creators": creators,
        "source_datasets": card.source_datasets or ["original"],
        "tags": ["medical", "image-classification", "class-imbalance", "rebalance"]
        + (["synthetic", "data-augmentation"] if synthetic else []),
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": files.format(split=s)} for s in SPLITS],
            }
        ],
    }
    return meta


def _front(meta: dict[str, Any]) -> list[str]:
    return ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", ""]


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
    notes += plan.quota_lines(counts) + plan.kept_test_lines(counts)
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


def _review(params: Params, fused, root: Path, study: bool) -> list[str]:
    """Clinician review (reviews/<name>.csv) per class and method; with `study` the reader study
    if one was run (metrics/reader_study.json, written by the web app, no stage)."""
    from rebalance.review import decisions

    synthetic = fused[(fused.split == "train") & manifest.synthetic(fused)]
    done = decisions.summary(decisions.read(root / decisions.path_for(params)), synthetic)
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
    found = root / paths.METRICS / "reader_study.json"
    if study and found.is_file():
        s = json.loads(found.read_text())
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


def _generators(build: Build) -> list[str]:
    """Each trained generator and its model card (models/generators/<name>/README.md)."""
    trained = [g for g in build.params.generators.model_dump(exclude_none=True)]
    used = set(build.fused.origin) - set(manifest.NOT_SYNTHETIC)
    if not trained:
        return []
    rows = []
    for name in trained:
        folder = (paths.GENERATORS / name).as_posix()
        rows.append([f"`{name}`", f"`{folder}/README.md`", "yes" if _made_by(name, used) else "no"])
    return [
        "",
        "## Generators",
        "",
        "Each generator the pipeline trained has a model card (training set, steps, params, samples) in its "
        "folder; every one trained on real train images only.",
        "",
        markdown_table(["generator", "model card", "images in this dataset"], rows),
    ]


def _made_by(generator: str, methods: set[str]) -> bool:
    """Whether images of these methods come from `generator` (diffusion and sd_lora: method diffusion)."""
    return bool(methods & ({"diffusion"} if generator in ("diffusion", "sd_lora") else {generator}))


def _verdict(summary: dict[str, Any]) -> list[str]:
    """Each verdict question with its reading and interval, one line each (the Evidence section
    has the sentences in full)."""
    lines = []
    for v in summary.get("verdict") or []:
        lo, hi = v["ci95"]
        what = f"{v['metric'].replace('_', ' ')} {v['delta']:+.3f} [95% {lo:+.3f}, {hi:+.3f}]"
        lines.append(f"- {v['question']} {v['reading'].capitalize()} ({what}).")
    return lines


def _use_and_limits(build: Build) -> list[str]:
    """Intended use, out-of-scope use, limitations (synthetic share, gate, verdict), licence, citation."""
    card = build.params.release.card
    classes = build.params.dataset.classes
    share = synthetic_share(build.fused, classes)
    failed = [r for r in build.gate_rows if not r["ok"]]
    gate_line = (
        f"The release gate's checks all pass ({len(build.gate_rows)})."
        if not failed
        else f"{len(failed)} of {len(build.gate_rows)} release-gate checks fail, first: {failed[0]['check']} "
        f"(got {failed[0]['value']}); see the release gate below."
    )
    verdict = _verdict(build.summary)
    lines = [
        "",
        "## Intended use",
        "",
        card.intended_use,
        "",
        "## Out-of-scope use",
        "",
        card.out_of_scope,
        "",
        "## Limitations",
        "",
        "- Synthetic share of each class's train files: "
        + ", ".join(f"{c} {v:.0%}" for c, v in share.items())
        + ". Val and test hold real images only.",
        f"- {gate_line}",
        "- Whether the synthetic images helped, as measured on this test set:",
        *[f"  {v}" for v in verdict],
        "- Personal and sensitive information: " + card.personal_information,
        "",
        "## Licence",
        "",
        f"`{card.license}`: the source images' licence. Synthetic images and flips derive from the real "
        "train images and are released under the same terms.",
    ]
    if not verdict:
        lines.remove("- Whether the synthetic images helped, as measured on this test set:")
    if card.citation:
        lines += ["", "## Citation", "", "Cite the source dataset:", "", "```bibtex", card.citation.strip()]
        lines += ["```"]
    return lines


def _use_it(tag: str | None) -> list[str]:
    fused = paths.FUSED.as_posix()
    rev = tag or "<tag>"
    return [
        "",
        "## Use it",
        "",
        "```",
        f"dvc get <registry-url> {fused} --rev {rev}",
        f"dvc import <registry-url> {fused} --rev {rev}",
        "```",
        "",
        "Or in Python, a torch Dataset with each sample's manifest row:",
        "",
        "```python",
        "import rebalance",
        f'ds = rebalance.open_release("<registry-url>", "{rev}", split="train")',
        "```",
        "",
        f"`{fused}/croissant.json` describes the files and records in Croissant 1.1 with its",
        "Responsible-AI fields. Real images are the source files byte for byte, EXIF tags included;",
        "flips and synthetic images are stored already oriented. Apply a photo's EXIF orientation",
        "when reading it (PIL: `ImageOps.exif_transpose`), or an image and its flip will disagree.",
        "",
    ]


def _summary_table(build: Build) -> str:
    fused = build.fused
    synthetic = int(manifest.synthetic(fused).sum())
    sharded = shards.is_sharded(fused)
    return markdown_table(
        ["", ""],
        [
            ["dataset", f"`{build.params.dataset.name}`: {', '.join(build.params.dataset.classes)}"],
            ["files", f"{len(fused)}: {int((fused.origin == 'real').sum())} real, "
                      f"{int((fused.origin == 'flip').sum())} flips, {synthetic} synthetic"],
            ["format", "WebDataset tars per split" if sharded else "one file per image, by split and class"],
            ["listing", f"`{manifest.FILENAME}` beside this card: each file's origin, source, root, sha256"],
        ],
    )  # fmt: skip


def _test_set_lines(build: Build) -> list[str]:
    """The test set as the build made it (a release card says how it relates to the last release)."""
    ts = build.test_set
    if not ts:
        return []
    kept = plan.kept_test_lines(build.counts or {})
    return [
        "",
        "## Test set",
        "",
        f"`{ts['sha256'][:16]}`: {ts['n']} real images, listed in `{paths.TEST_SET.as_posix()}`.",
        *[line for note in kept for line in ("", note)],
    ]


def _body(build: Build, release: bool) -> list[str]:
    params, classes = build.params, build.params.dataset.classes
    return [
        *_evidence(build.summary_md),
        *_use_and_limits(build),
        *_balance(build.counts, build.fused, classes, params.count.max_synthetic_ratio),
        *_kept(build.kept),
        *_generators(build),
        *_methods(params),
        *([] if release else _test_set_lines(build)),
        *_headline(build.evalm, params, classes),
        *_provenance(build.fused),
        *_review(params, build.fused, build.root, study=release),
        *_gate(build.gate_rows, params.release.gate.synthetic is not None),
    ]


def dataset_card(build: Build) -> str:
    """The card inside the artifact (data/fused/README.md): what it holds, how it was made, how good."""
    card = build.params.release.card
    return "\n".join(
        [
            *_front(front_matter(build)),
            f"# {card.pretty_name or build.params.dataset.name}",
            "",
            f"A balanced release of the image dataset `{build.params.dataset.name}`: the real images split "
            "by content (duplicates and patients never straddle splits), the minority classes filled up with "
            "synthetic images made from train images only, and the evidence of whether they helped.",
            "",
            _summary_table(build),
            *_body(build, release=False),
            *_use_it(None),
        ]
    )


def data_card(
    build: Build,
    *,
    tag: str,
    message: str | None,
    commit: str,
    remote: str,
    remote_url: str,
    artifacts: dict[str, tuple[str, str]],
    fused_out: dict[str, Any],
    test_set: dict[str, Any] | None = None,
    changes: list[str] | None = None,
) -> str:
    """The release's card (releases/<tag>.md): the dataset card under the release's name, with the
    release table, its test set against the previous release, and what changed since it."""
    name, version = tag.split("@", 1)
    lines = [
        *_front(front_matter(build)),
        f"# {name} {version}",
        "",
        message or f"Release {version} of the balanced dataset `{name}`.",
        "",
        _release_table(tag, commit, remote, remote_url, artifacts, fused_out, len(build.fused)),
        *(changes or []),
        *(testset.card_lines(test_set) if test_set else []),
        *_body(build, release=True),
        *_use_it(tag),
    ]
    return "\n".join(lines)

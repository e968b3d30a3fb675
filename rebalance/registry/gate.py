"""What a release must pass: an up-to-date pipeline, committed metrics, and the quality gate.

The gate (`release.gate` in params) gives one row per check, `{"check", "value", "ok"}`; the data
card shows every row, and `require_pass` refuses the release on the first failed one. `warnings`
are lines the release prints without refusing it (a class planned above count.max_synthetic_ratio).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebalance import config
from rebalance.config import Params
from rebalance.core import manifest, paths
from rebalance.core.errors import RebalanceError
from rebalance.core.hashing import sha256_bytes
from rebalance.dataset import listing, plan, shards
from rebalance.registry import git

REQUIRED_METRICS = (paths.COUNTS, paths.EVAL)


def check_up_to_date(repo) -> None:
    """Every DVC stage's outputs match its dependencies (`dvc status` is empty), but for stage scan's
    "always changed" (dvc.yaml): its listing of the source (data/source.json) must still be current."""
    root = Path(repo.root_dir)
    status = {name: s for name, s in repo.status().items() if s != ["always changed"]}
    if not status and not listing.listing_current(config.load(root / paths.PARAMS), root):
        status = {"scan (the source folder changed)": []}
    if status:
        names = ", ".join(list(status)[:3]) + (", ..." if len(status) > 3 else "")
        raise RebalanceError(f"pipeline not up to date ({len(status)} changed: {names}); run `dvc repro`")


def check_metrics(root: Path) -> None:
    """The metrics a release reports exist and are committed to git."""
    names = [m.as_posix() for m in REQUIRED_METRICS]
    missing = [m for m in names if not (root / m).is_file()]
    untracked = [m for m in names if m not in missing and not git.run(root, "ls-files", "--", m).strip()]
    if missing or untracked:
        what = ", ".join([f"{m} missing" for m in missing] + [f"{m} not in git" for m in untracked])
        raise RebalanceError(f"metrics incomplete ({what}); run `dvc repro` and commit")


def _min_metric_rows(minimums: dict[str, float], evalm: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for metric, minimum in minimums.items():
        value = evalm.get(metric)
        ok = isinstance(value, (int, float)) and value >= minimum
        rows.append({"check": f"{metric} >= {minimum}", "value": value, "ok": ok})
    return rows


def _imbalance_row(max_imbalance: float, fused, classes: list[str]) -> dict[str, Any]:
    train = fused[fused.split == "train"].label.value_counts()
    per = [int(train.get(c, 0)) for c in classes]
    ratio = max(per) / min(per) if min(per) else float("inf")
    return {
        "check": f"train max:min class ratio <= {max_imbalance}",
        "value": round(ratio, 3),
        "ok": ratio <= max_imbalance,
    }


def _invariants_row(fused, synthetic_in_eval: bool) -> dict[str, Any]:
    problems = manifest.check_invariants(fused, synthetic_in_eval)
    return {
        "check": "CONTRACT invariants (leakage, splits, flips)",
        "value": problems[0] if problems else "hold",
        "ok": not problems,
    }


def _checksums_row(root: Path, fused) -> dict[str, Any]:
    """Every image's bytes (a file, or a shard's sample) against the manifest's sha256."""
    folder = root / paths.FUSED

    def matches(r) -> bool:
        try:
            return sha256_bytes(shards.read_bytes(folder, r)) == r.sha256
        except (OSError, RebalanceError):
            return False

    bad = [r.path for r in fused.itertuples() if not matches(r)]
    return {
        "check": "images match manifest sha256",
        "value": f"{len(fused) - len(bad)}/{len(fused)}",
        "ok": not bad,
    }


def _reviewed_row(root: Path, params: Params, fused, minimum: float) -> dict[str, Any]:
    from rebalance.review import decisions

    synthetic = fused[(fused.split == "train") & manifest.synthetic(fused)]
    done = decisions.summary(decisions.read(root / decisions.path_for(params)), synthetic)
    return {
        "check": f"synthetic train images accepted by a reviewer >= {minimum:.0%}",
        "value": f"{done['accepted']}/{done['n']} ({done['accepted_share']:.0%})",
        "ok": done["accepted_share"] >= minimum,
    }


def synthetic_rows(cfg, quality: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per method and class, the kept images against `release.gate.synthetic`: intended-class rate
    (beside the real val images' reference; by the foundation model's probe where assess.features
    gave one, else by the filter's judge), slots left empty, near-copies, realism AUC when set."""
    if not quality:
        return [
            {
                "check": "synthetic quality measured (metrics/synthesis_quality.json)",
                "value": None,
                "ok": False,
            }
        ]
    reference = quality["per_method"].get("real_val", {})
    emptied = ((quality.get("filter") or {}).get("per_method")) or {}
    rows = []
    for method, per_class in quality["per_method"].items():
        if method == "real_val":
            continue
        for label, m in per_class.items():
            base, where = reference.get(label) or {}, f"{method}/{label}"
            # a foundation model's linear probe (assess.features) is a judge the filter never saw:
            # its rate is the one held to the threshold where both it and its reference exist
            probe = "intended_class_rate" in (m.get("foundation") or {}) and "foundation" in base
            judged, base = (m["foundation"], base["foundation"]) if probe else (m, base)
            ref, rate = base.get("intended_class_rate"), judged.get("intended_class_rate")
            if ref is not None:
                need = round(cfg.min_intended_ratio * ref, 4)
                by = " (foundation-model probe)" if probe else ""
                check = f"{where} intended-class rate{by} >= {cfg.min_intended_ratio} x real val's {ref}"
                rows.append({"check": check, "value": rate, "ok": rate is not None and rate >= need})
            empty = (emptied.get(method) or {}).get(label, {}).get("empty_share", 0.0)
            rows.append({"check": f"{where} slots left empty <= {cfg.max_empty_share:.0%}",
                         "value": f"{empty:.0%}", "ok": empty <= cfg.max_empty_share})  # fmt: skip
            copies = m.get("near_copies", 0) + m.get("near_copies_of_val_test", 0)
            rows.append({"check": f"{where} near-copies of real images <= {cfg.near_copies}",
                         "value": copies, "ok": copies <= cfg.near_copies})  # fmt: skip
            if cfg.max_realism_auc is not None:
                auc = m.get("real_vs_synthetic_auc")
                rows.append({"check": f"{where} real-vs-synthetic AUC <= {cfg.max_realism_auc}",
                             "value": auc, "ok": auc is not None and auc <= cfg.max_realism_auc})  # fmt: skip
    return rows


def gate(root: Path, params: Params, evalm: dict[str, Any], fused) -> list[dict[str, Any]]:
    """The release quality gate (`release.gate` in params): one row per check, `ok` True/False."""
    cfg = params.release.gate
    rows = _min_metric_rows(cfg.min_metrics, evalm)
    if cfg.max_imbalance is not None:
        rows.append(_imbalance_row(cfg.max_imbalance, fused, params.dataset.classes))
    if cfg.invariants:
        rows.append(_invariants_row(fused, params.fuse.synthetic_in_eval))
    if cfg.checksums:
        rows.append(_checksums_row(root, fused))
    if cfg.min_reviewed > 0:
        rows.append(_reviewed_row(root, params, fused, cfg.min_reviewed))
    if cfg.synthetic is not None and manifest.synthetic(fused).any():
        quality = root / paths.SYNTHESIS_QUALITY
        rows += synthetic_rows(cfg.synthetic, json.loads(quality.read_text()) if quality.is_file() else None)
    return rows


def warnings(params: Params, counts: dict[str, Any]) -> list[str]:
    """What the release reports but does not refuse: each class planned above
    count.max_synthetic_ratio synthetic images per real train image (metrics/counts.json)."""
    return plan.ratio_warnings(counts, params.count.max_synthetic_ratio)


def require_pass(rows: list[dict[str, Any]]) -> None:
    """Refuse the release if any gate row failed, naming the first."""
    failed = [r for r in rows if not r["ok"]]
    if failed:
        raise RebalanceError(
            f"release gate failed: {failed[0]['check']} (got {failed[0]['value']})"
            + (f" and {len(failed) - 1} more" if len(failed) > 1 else "")
            + "; see `release.gate` in params.yaml"
        )

"""Stage evaluate: every trained variant on the real-only test split; the evidence, verdict, plots.

Each variant's seeds are pooled (the mean of their softmax probabilities per test image, then
argmax). Intervals come from a two-level bootstrap over training seeds and test images within each
true class; every variant is compared with each baseline present (`report.BASELINES`) on the same
resamples; p-values are Holm-adjusted over the family (rebalance/learn/evidence.py says how, and
why recall intervals are widened to Wilson/Newcombe). metrics/summary.json holds it all with the
generated verdict (rebalance/learn/verdict.py), which leads metrics/summary.md; the forest plot and
the per-class recall plot go to metrics/plots/. metrics/eval.json: the headline variant's metrics,
the mean over seeds (what the release gate judges), each seed's under `per_seed`, the pooled
prediction's interval under `ci95`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rebalance import config
from rebalance.core import atomic, device, manifest, paths
from rebalance.core.errors import RebalanceError, run_main
from rebalance.core.hashing import sha256_text
from rebalance.core.progress import progress
from rebalance.learn import (
    classifier as model_mod,
    evidence,
    evidence_plots,
    metrics as scoring,
    report as summary,
    variants,
    verdict,
)
from rebalance.learn.data import fused_set


def write_csv_dir(folder: Path, tables: dict[str, list[dict]]) -> None:
    """One CSV per variant in `folder` (a `dvc plots` directory), replaced as a whole."""
    with atomic.output_dir(folder) as out:
        for variant, rows in tables.items():
            (out / f"{variant}.csv").write_text(pd.DataFrame(rows).to_csv(index=False, float_format="%.4f"))


def main() -> None:
    params = config.load()
    classes, cfg = params.dataset.classes, params.train
    ordinal = params.evaluate.ordinal
    if ordinal is None:
        ordinal = params.dataset.lesion_bins is not None
    fused = manifest.read(paths.FUSED / manifest.FILENAME)
    test = model_mod.split_rows(fused, "test", ["real"])
    if test.empty:
        raise RebalanceError(
            "evaluate: data/fused has no real test image; add images, or raise count.split.test"
        )
    test_set = sha256_text("".join(f"{r.path}:{r.sha256}\n" for r in test.itertuples()))
    runtime = device.runtime(params.compute)
    x = fused_set(test, cfg.image_size, params.dataset.fit, params.compute.in_memory_mb)
    y = np.array([classes.index(c) for c in test.label])
    counts = json.loads((paths.COUNTS).read_text())
    minority = [c for c in classes if counts["target"][c] > counts["splits"]["train"][c]]

    n_boot = params.evaluate.bootstrap
    measured = [c for i, c in enumerate(classes) if (y == i).any()]
    unmeasured = [c for c in minority if c not in measured]  # no test image: no recall, no difference
    compared = [*(f"recall_{c}" for c in minority if c in measured), *evidence.HEADLINE]
    found, table, confusion, roc, pr = {}, {}, {}, {}, {}
    for variant in progress(params.train.variants, "evaluate", unit="variant"):
        probas = []
        for seed in cfg.seeds:
            net, _ = model_mod.load(paths.classifier(variant, seed))
            probas.append(model_mod.predict_proba(net, x, params.evaluate.batch_size, runtime))
        v = found[variant] = evidence.Variant(y, np.stack(probas), classes, n_boot)
        per_seed = [scoring.evaluate(y, p, classes, ordinal) for p in probas]
        keep = [f"recall_{c}" for c in measured] + list(evidence.HEADLINE)
        table[variant] = {
            "study": params.train.variants[variant].study,
            "mean_std": summary.aggregate(per_seed, [c for c in minority if c in measured]),
            "pooled": {k: v.point[k] for k in keep},
            "ci95": {k: v.ci95[k] for k in keep},
            "per_seed": {f"seed{s}": m for s, m in zip(cfg.seeds, per_seed)},
        }
        confusion[variant] = scoring.confusion_rows(y, v.pred, classes)
        roc[variant], pr[variant] = scoring.curve_rows(y, v.probas.mean(0), classes)
    baselines = [b for b in summary.BASELINES if b in table]
    for variant, t in table.items():
        t["paired"] = {
            b: found[variant].minus(found[b], compared)
            for b in baselines
            if summary.compares(variant, b, cfg.headline)
        }
    family = evidence.holm(table)
    h = found[cfg.headline]
    detectable = {m: evidence.minimal_detectable(h.se[m], h.se[m]) for m in compared}

    head = cfg.headline
    atomic.write_json(
        paths.EVAL,
        summary.mean_over_seeds(list(table[head]["per_seed"].values()))
        | {"variant": head, "seeds": cfg.seeds, "n_test": len(y), "test_set": test_set}
        | {"pooling": evidence.POOLING, "pooled": table[head]["pooled"], "ci95": table[head]["ci95"]}
        | {"per_seed": table[head]["per_seed"]},
    )
    result = {
        "headline": head,
        "generators": {s.method: v for v, s in params.train.variants.items() if s.method},
        "minority": minority,
        "n_test": len(y),
        "test_set": test_set,
        "seeds": cfg.seeds,
        "pooling": evidence.POOLING,
        "bootstrap": {"resamples": n_boot, "seed": evidence.BOOTSTRAP_SEED} | evidence.METHOD,
        "baselines": baselines,
        "holm_family": family,  # every variant-baseline-metric difference; p_holm beside each p
        "not_measured": unmeasured,
        # the smallest true difference a comparison with the headline variant finds (80% power)
        "minimal_detectable_difference": detectable,
        "train_composition": {  # what each variant trained on: {variant: {class: {origin: rows}}}
            v: variants.composition(variants.variant_rows(fused, s, params.flip))
            for v, s in params.train.variants.items()
        },
        "variants": {
            v: {k: t[k] for k in ("study", "mean_std", "pooled", "ci95", "paired")} for v, t in table.items()
        },
    }
    result["verdict"] = verdict.answers(result)
    atomic.write_json(paths.SUMMARY, result)
    md = summary.markdown(result)
    atomic.write_text(paths.SUMMARY_MD, md)
    write_csv_dir(paths.PLOTS / "confusion", confusion)
    write_csv_dir(paths.PLOTS / "roc", roc)
    write_csv_dir(paths.PLOTS / "pr", pr)
    evidence_plots.forest(result, paths.PLOTS / "evidence.png")
    evidence_plots.recall_by_variant(result, classes, paths.PLOTS / "recall_by_variant.png")
    print(md)


if __name__ == "__main__":
    run_main(main)

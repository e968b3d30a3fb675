"""Stage evaluate: every trained variant on the real-only test split; the evidence, table, plots.

Each variant's seeds are pooled by averaging their softmax probabilities per test image, then
taking the argmax (`report.POOLING`). On those pooled predictions: 95% class-stratified bootstrap
intervals per variant, and for every variant against each baseline present (`report.BASELINES`:
real_oversampled, real, real_weighted) a paired class-stratified bootstrap of the difference on
the same resampled test images (`learn.metrics`; `evaluate.bootstrap` resamples, fixed seed).
metrics/eval.json: the headline variant's metrics, the mean over seeds (what the release gate
judges), each seed's under `per_seed`, the pooled interval under `ci95`.
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
from rebalance.learn import classifier as model_mod, metrics as scoring, report as summary, variants
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
    table, confusion, roc, pr, samples = {}, {}, {}, {}, {}
    for variant in progress(params.train.variants, "evaluate", unit="variant"):
        probas = []
        for seed in cfg.seeds:
            net, _ = model_mod.load(paths.classifier(variant, seed))
            probas.append(model_mod.predict_proba(net, x, params.evaluate.batch_size, runtime))
        per_seed = [scoring.evaluate(y, p, classes, ordinal) for p in probas]
        pooled = np.mean(probas, axis=0)  # pooled over seeds (report.POOLING)
        pred = pooled.argmax(1)
        samples[variant] = scoring.bootstrap_samples(y, pred, classes, minority, n_boot)
        table[variant] = {
            "mean_std": summary.aggregate(per_seed, minority),
            "pooled": scoring.point_metrics(y, pred, classes, minority),
            "ci95": {name: scoring.interval(v) for name, v in samples[variant].items()},
            "per_seed": {f"seed{s}": m for s, m in zip(cfg.seeds, per_seed)},
        }
        confusion[variant] = scoring.confusion_rows(y, pred, classes)
        roc[variant], pr[variant] = scoring.curve_rows(y, pooled, classes)
    baselines = [b for b in summary.BASELINES if b in table]
    for variant, t in table.items():
        t["paired"] = {
            base: scoring.paired(samples[variant], samples[base], t["pooled"], table[base]["pooled"])
            for base in baselines
            if base != variant
        }
    unmeasured = [c for c in minority if not (y == classes.index(c)).any()]  # no test image: no recall
    for t in table.values():
        for c in unmeasured:
            for part in (t["ci95"], t["pooled"], t["mean_std"], *t["paired"].values()):
                part.pop(f"recall_{c}", None)
    family = summary.holm(table)

    head = cfg.headline
    atomic.write_json(
        paths.EVAL,
        summary.mean_over_seeds(list(table[head]["per_seed"].values()))
        | {"variant": head, "seeds": cfg.seeds, "n_test": len(y), "test_set": test_set}
        | {"pooling": summary.POOLING, "pooled": table[head]["pooled"], "ci95": table[head]["ci95"]}
        | {"per_seed": table[head]["per_seed"]},
    )
    result = {
        "headline": head,
        "generators": {s.method: v for v, s in params.train.variants.items() if s.method},
        "minority": minority,
        "n_test": len(y),
        "test_set": test_set,
        "seeds": cfg.seeds,
        "pooling": summary.POOLING,
        "bootstrap": {
            "resamples": n_boot,
            "seed": scoring.BOOTSTRAP_SEED,
            "stratified_by": "true class",
            "p": summary.P_FORMULA,
        },
        "baselines": baselines,
        "holm_family": family,  # every variant-baseline-metric difference; p_holm beside each p
        "not_measured": unmeasured,
        "train_composition": {  # what each variant trained on: {variant: {class: {origin: rows}}}
            v: variants.composition(variants.training_rows(fused, s.data, s.method))
            for v, s in params.train.variants.items()
        },
        "variants": {
            v: {k: t[k] for k in ("mean_std", "pooled", "ci95", "paired")} for v, t in table.items()
        },
    }
    atomic.write_json(paths.SUMMARY, result)
    md = summary.markdown(result)
    atomic.write_text(paths.SUMMARY_MD, md)
    write_csv_dir(paths.PLOTS / "confusion", confusion)
    write_csv_dir(paths.PLOTS / "roc", roc)
    write_csv_dir(paths.PLOTS / "pr", pr)
    print(md)


if __name__ == "__main__":
    run_main(main)

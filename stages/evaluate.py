"""Stage evaluate: every trained variant on the real-only test split; headline metrics, table, plots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from stages import atomic, manifest, scoring, summary
from stages import model as model_mod
from stages import params as params_mod
from stages.errors import run_main

FUSED = Path("data/fused")
METRICS = Path("metrics")
PLOTS = METRICS / "plots"


def main() -> None:
    params = params_mod.load()
    classes, cfg = params["dataset"]["classes"], params["train"]
    ordinal = params["evaluate"].get("ordinal", params["dataset"].get("lesion_bins") is not None)
    fused = manifest.read(FUSED / manifest.FILENAME)
    test = model_mod.split_rows(fused, "test", ["real"])
    x = model_mod.load_images(FUSED, list(test.path), cfg["image_size"])
    y = np.array([classes.index(c) for c in test.label])
    counts = json.loads((METRICS / "counts.json").read_text())
    test_set = hashlib.sha256("".join(f"{r.path}:{r.sha256}\n" for r in test.itertuples()).encode()).hexdigest()
    minority = [c for c in classes if counts["target"][c] > counts["splits"]["train"][c]]

    table = {}
    for variant in cfg["variants"]:
        per_seed, first = [], None
        for seed in cfg["seeds"]:
            net, _ = model_mod.load(Path(f"models/{variant}/seed{seed}.pt"))
            proba = model_mod.predict_proba(net, x, params["evaluate"]["batch_size"])
            per_seed.append(scoring.evaluate(y, proba, classes, ordinal))
            first = proba if first is None else first
        pred = first.argmax(1)
        table[variant] = {
            "mean_std": summary.aggregate(per_seed, minority),
            "ci": scoring.bootstrap(y, pred, params["evaluate"].get("bootstrap", 1000)),
            "per_seed": per_seed,
        }
        if variant == cfg["headline"]:
            headline = per_seed[0] | {
                "variant": variant,
                "seed": cfg["seeds"][0],
                "n_test": len(y),
                "test_set": test_set,
                "ci95": table[variant]["ci"],
                "seeds": table[variant]["mean_std"],
            }
            roc, pr = scoring.curve_rows(y, first, classes)
            atomic.write_text(
                PLOTS / "confusion.csv",
                pd.DataFrame(scoring.confusion_rows(y, pred, classes)).to_csv(index=False),
            )
            atomic.write_text(PLOTS / "roc.csv", pd.DataFrame(roc).to_csv(index=False, float_format="%.4f"))
            atomic.write_text(PLOTS / "pr.csv", pd.DataFrame(pr).to_csv(index=False, float_format="%.4f"))

    atomic.write_json(METRICS / "eval.json", headline)
    atomic.write_json(
        METRICS / "summary.json",
        {
            "headline": cfg["headline"],
            "minority": minority,
            "n_test": len(y),
            "test_set": test_set,
            "seeds": cfg["seeds"],
            "variants": {v: {"mean_std": t["mean_std"], "ci95": t["ci"]} for v, t in table.items()},
        },
    )
    md = summary.markdown(table, minority, cfg["headline"], len(cfg["seeds"]), len(y))
    atomic.write_text(METRICS / "summary.md", md)
    print(md)


if __name__ == "__main__":
    run_main(main)

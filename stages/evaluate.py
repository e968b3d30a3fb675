"""Stage evaluate: every trained variant on the real-only test split; headline metrics, table, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from stages.core import atomic, manifest, params as params_mod, paths
from stages.core.errors import run_main
from stages.core.hashing import sha256_text
from stages.learn import classifier as model_mod, metrics as scoring, report as summary


def write_csv_dir(folder: Path, tables: dict[str, list[dict]]) -> None:
    """One CSV per variant in `folder` (a `dvc plots` directory), replaced as a whole."""
    with atomic.output_dir(folder) as out:
        for variant, rows in tables.items():
            (out / f"{variant}.csv").write_text(pd.DataFrame(rows).to_csv(index=False, float_format="%.4f"))


def main() -> None:
    params = params_mod.load()
    classes, cfg = params["dataset"]["classes"], params["train"]
    ordinal = params["evaluate"]["ordinal"]
    if ordinal is None:
        ordinal = params["dataset"]["lesion_bins"] is not None
    fused = manifest.read(paths.FUSED / manifest.FILENAME)
    test = model_mod.split_rows(fused, "test", ["real"])
    test_set = sha256_text("".join(f"{r.path}:{r.sha256}\n" for r in test.itertuples()))
    x = model_mod.load_images(paths.FUSED, list(test.path), cfg["image_size"])
    y = np.array([classes.index(c) for c in test.label])
    counts = json.loads((paths.COUNTS).read_text())
    minority = [c for c in classes if counts["target"][c] > counts["splits"]["train"][c]]

    table, confusion, roc, pr = {}, {}, {}, {}
    for variant in cfg["variants"]:
        probas = []
        for seed in cfg["seeds"]:
            net, _ = model_mod.load(paths.classifier(variant, seed))
            probas.append(model_mod.predict_proba(net, x, params["evaluate"]["batch_size"]))
        per_seed = [scoring.evaluate(y, p, classes, ordinal) for p in probas]
        pred = probas[0].argmax(1)  # intervals and plots: the first seed's model
        table[variant] = {
            "mean_std": summary.aggregate(per_seed, minority),
            "ci95": scoring.bootstrap(y, pred, params["evaluate"]["bootstrap"]),
            "first_seed": per_seed[0],
        }
        confusion[variant] = scoring.confusion_rows(y, pred, classes)
        roc[variant], pr[variant] = scoring.curve_rows(y, probas[0], classes)

    head = cfg["headline"]
    atomic.write_json(
        paths.EVAL,
        table[head]["first_seed"]
        | {"variant": head, "seed": cfg["seeds"][0], "n_test": len(y), "test_set": test_set}
        | {"ci95": table[head]["ci95"], "seeds": table[head]["mean_std"]},
    )
    atomic.write_json(
        paths.SUMMARY,
        {
            "headline": head,
            "minority": minority,
            "n_test": len(y),
            "test_set": test_set,
            "seeds": cfg["seeds"],
        }
        | {"variants": {v: {"mean_std": t["mean_std"], "ci95": t["ci95"]} for v, t in table.items()}},
    )
    md = summary.markdown(table, minority, head, len(cfg["seeds"]), len(y))
    atomic.write_text(paths.SUMMARY_MD, md)
    write_csv_dir(paths.PLOTS / "confusion", confusion)
    write_csv_dir(paths.PLOTS / "roc", roc)
    write_csv_dir(paths.PLOTS / "pr", pr)
    print(md)


if __name__ == "__main__":
    run_main(main)

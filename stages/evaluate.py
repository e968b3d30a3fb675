"""Stage evaluate: every trained variant on the real-only test split; headline metrics, table, plots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from stages import atomic, manifest, model as model_mod, params as params_mod, scoring, summary
from stages.errors import run_main

FUSED = Path("data/fused")
METRICS = Path("metrics")
PLOTS = METRICS / "plots"


def write_csv_dir(folder: Path, tables: dict[str, list[dict]]) -> None:
    """One CSV per variant in `folder` (a `dvc plots` directory), replaced as a whole."""
    with atomic.output_dir(folder) as out:
        for variant, rows in tables.items():
            (out / f"{variant}.csv").write_text(pd.DataFrame(rows).to_csv(index=False, float_format="%.4f"))


def main() -> None:
    params = params_mod.load()
    classes, cfg = params["dataset"]["classes"], params["train"]
    ordinal = params["evaluate"].get("ordinal", params["dataset"].get("lesion_bins") is not None)
    fused = manifest.read(FUSED / manifest.FILENAME)
    test = model_mod.split_rows(fused, "test", ["real"])
    test_set = hashlib.sha256(
        "".join(f"{r.path}:{r.sha256}\n" for r in test.itertuples()).encode()
    ).hexdigest()
    x = model_mod.load_images(FUSED, list(test.path), cfg["image_size"])
    y = np.array([classes.index(c) for c in test.label])
    counts = json.loads((METRICS / "counts.json").read_text())
    minority = [c for c in classes if counts["target"][c] > counts["splits"]["train"][c]]

    table, confusion, roc, pr = {}, {}, {}, {}
    for variant in cfg["variants"]:
        probas = []
        for seed in cfg["seeds"]:
            net, _ = model_mod.load(Path(f"models/{variant}/seed{seed}.pt"))
            probas.append(model_mod.predict_proba(net, x, params["evaluate"]["batch_size"]))
        per_seed = [scoring.evaluate(y, p, classes, ordinal) for p in probas]
        pred = probas[0].argmax(1)  # intervals and plots: the first seed's model
        table[variant] = {
            "mean_std": summary.aggregate(per_seed, minority),
            "ci95": scoring.bootstrap(y, pred, params["evaluate"].get("bootstrap", 1000)),
            "first_seed": per_seed[0],
        }
        confusion[variant] = scoring.confusion_rows(y, pred, classes)
        roc[variant], pr[variant] = scoring.curve_rows(y, probas[0], classes)

    head = cfg["headline"]
    atomic.write_json(
        METRICS / "eval.json",
        table[head]["first_seed"]
        | {"variant": head, "seed": cfg["seeds"][0], "n_test": len(y), "test_set": test_set}
        | {"ci95": table[head]["ci95"], "seeds": table[head]["mean_std"]},
    )
    atomic.write_json(
        METRICS / "summary.json",
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
    atomic.write_text(METRICS / "summary.md", md)
    write_csv_dir(PLOTS / "confusion", confusion)
    write_csv_dir(PLOTS / "roc", roc)
    write_csv_dir(PLOTS / "pr", pr)
    print(md)


if __name__ == "__main__":
    run_main(main)

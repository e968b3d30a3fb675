"""Stage detect: measure the lesion detector against the true counts of the demo dataset.

Writes metrics/detector.json: count MAE, bias and grade agreement on the train split (the bar the
lesion-edit method relies on) and, as a held-out check, on val. Folders without true counts
(data/raw/labels.csv absent) or datasets without lesion grading get a note instead.
"""

from __future__ import annotations

import pandas as pd

from stages.core import atomic, manifest, params as params_mod, paths
from stages.core.errors import run_main
from stages.core.pool import pmap
from stages.dataset import grading
from stages.synth import detector

SPLITS = ("train", "val")


def main() -> None:
    params = params_mod.load()
    bins = grading.lesion_bins(params)
    if bins is None or not paths.LABELS.exists():
        why = "dataset.lesion_bins is null" if bins is None else f"{paths.LABELS} is absent (no true counts)"
        atomic.write_json(paths.DETECTOR, {"measured": False, "note": f"detector not measured: {why}"})
        print(f"detect: skipped, {why}")
        return
    truth = pd.read_csv(paths.LABELS, dtype={"path": str})
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    rows = truth.merge(real[["path", "split"]], on="path")
    result: dict = {"measured": True, "detector": detector.VERSION}
    for split in SPLITS:
        part = rows[rows.split == split]
        files = [paths.RAW / p for p in part.path]
        counts = pmap(detector.count_file, files, f"detect {split}", params["compute"]["processes"])
        result[split] = detector.measure(counts, list(part.lesions), list(part.label), bins)
    atomic.write_json(paths.DETECTOR, result)
    tr = result["train"]
    print(f"detect: train grade agreement {tr['grade_agreement']:.3f}, count MAE {tr['count_mae']:.2f}")


if __name__ == "__main__":
    run_main(main)

"""Stage detect: measure the lesion detector against the true counts (the demo's, or a `lesions`
column of the source's table, as ACNE04's lists hold).

Writes metrics/detector.json: count MAE, bias and grade agreement on the train split (what the
lesion-edit method relies on) and, as a held-out check, on val. Sources without true counts
(no data/raw/labels.csv, or no integer `lesions` column in it) or datasets without lesion grading
get a note instead.
"""

from __future__ import annotations

import pandas as pd

from rebalance import config
from rebalance.core import atomic, manifest, paths
from rebalance.core.errors import run_main
from rebalance.core.pool import pmap
from rebalance.dataset import grading
from rebalance.synth import detector

SPLITS = ("train", "val")


def unmeasurable(bins: dict | None, truth: pd.DataFrame | None) -> str:
    """Why the detector cannot be measured ('' when it can)."""
    if bins is None:
        return "dataset.lesion_bins is null"
    if truth is None:
        return f"{paths.LABELS} is absent (no true counts)"
    if "lesions" not in truth.columns:
        return f"{paths.LABELS} has no `lesions` column of true counts (name it in the source's table)"
    if not pd.api.types.is_integer_dtype(truth.lesions):
        return f"{paths.LABELS}: `lesions` holds a value that is not a count"
    return ""


def main() -> None:
    params = config.load()
    bins = grading.lesion_bins(params)
    truth = pd.read_csv(paths.LABELS, dtype={"path": str}) if paths.LABELS.exists() else None
    why = unmeasurable(bins, truth)
    if why:
        atomic.write_json(paths.DETECTOR, {"measured": False, "note": f"detector not measured: {why}"})
        print(f"detect: skipped, {why}")
        return
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    truth = truth[["path", "label", "lesions"]]  # (a CSV source's table may hold its official split too)
    rows = truth.merge(real[["path", "split"]], on="path")
    result: dict = {"measured": True, "detector": detector.VERSION}
    for split in SPLITS:
        part = rows[rows.split == split]
        files = [paths.RAW / p for p in part.path]
        counts = pmap(detector.count_file, files, f"detect {split}", params.compute.processes)
        result[split] = detector.measure(counts, list(part.lesions), list(part.label), bins)
    atomic.write_json(paths.DETECTOR, result)
    tr = result["train"]
    print(f"detect: train grade agreement {tr['grade_agreement']:.3f}, count MAE {tr['count_mae']:.2f}")


if __name__ == "__main__":
    run_main(main)

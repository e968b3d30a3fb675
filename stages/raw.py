"""Stage raw: data/raw/<class>/<file> from the demo generator or the user's folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.core import atomic, params as params_mod, paths
from stages.core.errors import run_main
from stages.dataset import demo, grading, ingest


def main() -> None:
    params = params_mod.load()
    classes = params["dataset"]["classes"]
    raw = params["raw"]
    with atomic.output_dir(paths.RAW) as out:
        if raw["source"] == "demo":
            cfg = raw["demo"]
            bins = grading.lesion_bins(params)
            rows = demo.write(out, classes, bins, cfg["scale"], cfg["size"], cfg["seed"])
            pd.DataFrame(rows, columns=demo.LABEL_COLUMNS).to_csv(out / paths.LABELS.name, index=False)
            images, skipped = [(r["path"], r["label"]) for r in rows], []
        else:
            found = ingest.scan(Path(raw["source"]), classes, raw["on_bad_file"])
            ingest.copy_images(Path(raw["source"]), found.images, out)
            images, skipped = found.images, found.skipped
    counts = {c: sum(1 for _, label in images if label == c) for c in classes}
    atomic.write_json(paths.RAW_REPORT, {"source": raw["source"], "images": counts, "skipped": skipped})
    for s in skipped:
        print(f"skipped {s['path']}: {s['reason']}")
    print(f"raw: {len(images)} images in {len(classes)} classes, {len(skipped)} skipped")


if __name__ == "__main__":
    run_main(main)

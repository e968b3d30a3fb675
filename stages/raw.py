"""Stage raw: data/raw/<class>/<file> from the demo generator or the user's folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages import atomic, demo, ingest, params as params_mod
from stages.errors import run_main

RAW_DIR = Path("data/raw")
REPORT = Path("metrics/raw.json")


def main() -> None:
    params = params_mod.load()
    classes = params["dataset"]["classes"]
    raw = params["raw"]
    with atomic.output_dir(RAW_DIR) as out:
        if raw["source"] == "demo":
            cfg = raw.get("demo") or {}
            rows = demo.write(
                out,
                classes,
                params_mod.lesion_bins(params),
                cfg.get("scale", 1.0),
                cfg.get("size", 128),
                cfg.get("seed", 0),
            )
            pd.DataFrame(rows, columns=demo.LABEL_COLUMNS).to_csv(out / "labels.csv", index=False)
            images, skipped = [(r["path"], r["label"]) for r in rows], []
        else:
            found = ingest.scan(Path(raw["source"]), classes, raw.get("on_bad_file", "skip"))
            ingest.copy_images(Path(raw["source"]), found.images, out)
            images, skipped = found.images, found.skipped
    counts = {c: sum(1 for _, label in images if label == c) for c in classes}
    atomic.write_json(REPORT, {"source": raw["source"], "images": counts, "skipped": skipped})
    for s in skipped:
        print(f"skipped {s['path']}: {s['reason']}")
    print(f"raw: {len(images)} images in {len(classes)} classes, {len(skipped)} skipped")


if __name__ == "__main__":
    run_main(main)

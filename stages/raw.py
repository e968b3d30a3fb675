"""Stage raw: data/raw/<class>/<file> from the demo generator or the user's source.

Sources (`raw.source`): `demo`; a folder of class folders (rebalance/dataset/ingest.py); a CSV of
`path,label[,split,group,...]` (csv_source.py); a MedMNIST .npz (npz_source.py).

Besides the images, data/raw holds images.csv (every image: path, label, its path in the source,
its official split and group, when the source gives them), ingest.json (the params it was
ingested with and, for a folder, a digest of the source's listing, so `rebalance plan` can tell
whether data/raw is current) and, for a folder or CSV source, fingerprints.csv (each image's
sha256 and content fingerprint from the worker that verified it, so stage count decodes nothing).
A folder's 16-bit and float images are windowed to 8-bit PNGs (`raw.window`); every other file is
copied byte for byte. DVC re-runs this stage when stage scan's listing of the source
(data/source.json) changes.
"""

from __future__ import annotations

import pandas as pd

from rebalance import config
from rebalance.core import atomic, paths, window
from rebalance.core.errors import run_main
from rebalance.dataset import csv_read, duplicates, grading, ingest, metadata, source

UNMATCHED_SHOWN = 20  # metadata rows naming no ingested image: how many metrics/raw.json lists


def main() -> None:
    params = config.load()
    classes = params.dataset.classes
    raw = params.raw
    window.set_window(raw.window)
    settings = ingest.settings(params)  # before reading the source: a file added meanwhile re-runs raw
    unmatched: list[str] = []
    windowed: set[str] = set()
    repeated = 0  # images with several rows in the source's table (RSNA: one per box)
    with atomic.output_dir(paths.RAW) as out:
        if raw.source == "demo":
            from rebalance.dataset import demo  # (scipy.ndimage: only the demo needs it)

            cfg = raw.demo
            bins = grading.lesion_bins(params)
            rows = demo.write(out, classes, bins, cfg.scale, cfg.size, cfg.seed)
            pd.DataFrame(rows, columns=demo.LABEL_COLUMNS).to_csv(out / paths.LABELS.name, index=False)
            images, skipped = [(r["path"], r["label"]) for r in rows], []
            index = [{"path": p, "label": c, "source": p, "split": "", "group": ""} for p, c in images]
        else:
            src = source.read(params, out=out)  # verified and written to `out` in one pass
            found, csv = src.found, src.metadata_csv
            attached = metadata.attach(src.dataset, found.source, found.official)
            images, skipped, unmatched = found.images, found.skipped, attached.unmatched
            windowed = found.windowed
            if csv is not None:
                repeated = csv_read.repeated(csv, src.dataset.csv)
                labels = metadata.attributes(csv, images, found.source, src.dataset.csv)
                atomic.write_text(out / paths.LABELS.name, labels.to_csv(index=False, lineterminator="\n"))
            index = [
                {
                    "path": name,
                    "label": label,
                    "source": found.source[name],
                    "split": attached.official.get(name, ""),
                    "group": attached.groups.get(name, ""),
                }
                for name, label in images
            ]
        metadata.write_index(index, out / paths.RAW_INDEX.name)
        if raw.source != "demo" and not src.extracted:  # the ingesting workers' fingerprints, for count
            prints = [(name, src.found.prints[name]) for name, _ in images]
            rows = [{"path": n, "sha256": f.sha256, "pixels": f.pixels, "phash": f.phash} for n, f in prints]
            duplicates.write_table(rows, out / paths.RAW_FINGERPRINTS.name)
        atomic.write_json(out / paths.RAW_INGEST.name, settings)
    counts = {c: sum(1 for _, label in images if label == c) for c in classes}
    official = sorted({r["split"] for r in index if r["split"]})
    report = {"source": raw.source, "images": counts, "skipped": skipped}
    report |= {"official_split": official, "groups": len({r["group"] for r in index if r["group"]})}
    if unmatched:
        report["metadata_unmatched"] = {"n": len(unmatched), "first": unmatched[:UNMATCHED_SHOWN]}
    if repeated:
        report["metadata_repeated"] = repeated
    if windowed:
        report["windowed"] = {"n": len(windowed), "window": raw.window}
    atomic.write_json(paths.RAW_REPORT, report)
    for s in skipped[:UNMATCHED_SHOWN]:
        print(f"skipped {s['path']}: {s['reason']}")
    if len(skipped) > UNMATCHED_SHOWN:
        print(f"... and {len(skipped) - UNMATCHED_SHOWN} more skipped files (all in {paths.RAW_REPORT})")
    if unmatched:
        print(f"metadata: {len(unmatched)} rows name no ingested image, first: {unmatched[0]}")
    if params.dataset.group_pattern:
        matched = sum(1 for r in index if r["group"])
        print(
            f"groups: {report['groups']} from dataset.group_pattern, {matched} of {len(index)} images "
            "matched (the others: each its own group)"
        )
    if repeated:
        print(f"metadata: {repeated} images have several rows (same label, split, group): first row kept")
    if windowed:
        print(f"windowed {len(windowed)} DICOM, 16-bit or float images to 8-bit PNG ({raw.window})")
    print(f"raw: {len(images)} images in {len(classes)} classes, {len(skipped)} skipped")


if __name__ == "__main__":
    run_main(main)

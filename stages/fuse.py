"""Stage fuse: data/fused/{train,val,test}/<class>/ and its manifest, linked, not copied; or,
with `fuse.format: shards`, data/fused/<split>/<split>-NNNNNN.tar and the manifest (the sharded
release format of rebalance/dataset/shards.py, for 100k+ images: a few files instead of one per image).
Stage document then writes the card and Croissant metadata beside them in data/fused.

Before publishing it refuses a manifest that breaks the CONTRACT invariants, and any content
leak: a file of val or test that is an exact or near-duplicate (perceptual hash within
`count.near_duplicate_bits`) of a file in another split, synthetic and flipped files included.
It also writes metrics/test_set.json, the identity of the real test images.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rebalance import config
from rebalance.core import atomic, manifest, paths
from rebalance.core.errors import RebalanceError, run_main
from rebalance.core.hashing import sha256_text
from rebalance.core.progress import progress
from rebalance.dataset import duplicates, shards
from rebalance.dataset.flips import FINGERPRINTS as FLIP_PRINTS
from rebalance.review import decisions


def fingerprints(fused: pd.DataFrame, files: dict[str, Path | shards.Packed]) -> list:
    """Fingerprints of every fused file, by file sha256: stage count's (real images) and stage
    flip's (flips) tables, computed here only for the rest (synthetic images)."""
    cached: dict[str, duplicates.Fingerprint] = {}
    for table_path in (paths.FINGERPRINTS, paths.FLIPPED / FLIP_PRINTS):
        if table_path.is_file():
            cached |= dict(duplicates.read_table(table_path).values())
    todo = [i for i, sha in enumerate(fused.sha256) if sha not in cached]
    computed = dict(zip(todo, duplicates.of_files([files[fused.path.iloc[i]] for i in todo])))
    return [computed[i] if i in computed else cached[sha] for i, sha in enumerate(fused.sha256)]


def check_leaks(fused: pd.DataFrame, prints: list, bits: int) -> None:
    """Refuse (one line, both files) when files of two splits are duplicates by content."""
    pairs = duplicates.near_pairs((p.phash for p in prints), bits, codes=list(fused.split))
    if not pairs:
        return
    rows = fused.reset_index(drop=True)
    i, j = min(pairs, key=lambda ij: "train" not in (rows.split[ij[0]], rows.split[ij[1]]))
    if rows.split[i] == "train":  # name the val/test file first
        i, j = j, i
    a, b = rows.iloc[i], rows.iloc[j]
    what = duplicates.describe(prints[i], prints[j])
    raise RebalanceError(
        f"fuse: content leak ({len(pairs)} pair(s) across splits), first: {a.split} file {a.path} "
        f"({a.origin}) and {b.split} file {b.path} ({b.origin}): {what}; "
        "remove one from the source (threshold: count.near_duplicate_bits)"
    )


def test_set(fused: pd.DataFrame) -> dict:
    """The real test images and their hash: sha256 over "path:sha256\\n" lines sorted by path."""
    test = fused[(fused.split == "test") & (fused.origin == "real")].sort_values("path")
    images = [{"path": r.path, "label": r.label, "sha256": r.sha256} for r in test.itertuples()]
    digest = sha256_text("".join(f"{r['path']}:{r['sha256']}\n" for r in images))
    return {"sha256": digest, "n": len(images), "images": images}


def main() -> None:
    params = config.load()
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    files = {f"{r.split}/{r.path}": paths.RAW / r.path for r in real.itertuples()}
    real = real.assign(path=[f"{r.split}/{r.path}" for r in real.itertuples()])
    parts = [real]
    for folder in (paths.SYNTHESIZED, paths.FLIPPED):  # synthetic files; flips packed in shards
        df = manifest.read(folder / manifest.FILENAME)
        files.update({r.path: shards.source(folder, r) for r in df.itertuples()})
        parts.append(df[manifest.COLUMNS])
    fused = pd.concat(parts, ignore_index=True)
    duplicated = fused.path[fused.path.duplicated()]
    if not duplicated.empty:
        raise RebalanceError(
            f"fuse: two files would land at data/fused/{duplicated.iloc[0]}; rename the raw file"
        )
    problems = manifest.check_invariants(fused, params.fuse.synthetic_in_eval)
    if problems:
        raise RebalanceError(f"fuse: {len(problems)} leakage problems, first: {problems[0]}")
    rejected = {
        sha
        for sha, d in decisions.latest(decisions.read(decisions.path_for(params))).items()
        if d == "reject"
    }
    shipped = fused[fused.sha256.isin(rejected)]
    if not shipped.empty:
        raise RebalanceError(
            f"fuse: {len(shipped)} image(s) a reviewer rejected would ship, first {shipped.path.iloc[0]}; "
            "run `dvc repro` (synthesize regenerates rejected slots)"
        )
    prints = fingerprints(fused, files)
    check_leaks(fused, prints, params.count.near_duplicate_bits)
    cfg = params.fuse
    with atomic.output_entries(paths.FUSED, paths.FUSED_OUTS) as out:
        if cfg.format == "shards":
            fused = shards.write(fused, files, out, cfg.shard_mb)
        else:
            for path, src in progress(files.items(), "fuse: link", total=len(files)):
                if isinstance(src, shards.Packed):  # a flip: unpacked (its only per-file copy)
                    (out / path).parent.mkdir(parents=True, exist_ok=True)
                    (out / path).write_bytes(src.read_bytes())
                else:
                    atomic.link_or_copy(src, out / path)
        manifest.write(fused, out / manifest.FILENAME)
    counts = manifest.nested_counts(fused, ["split", "label", "origin"])
    atomic.write_json(paths.FUSED_COUNTS, counts)
    atomic.write_json(paths.TEST_SET, test_set(fused))
    print(
        f"fuse: {len(fused)} images ({cfg.format}), no content leak; "
        + ", ".join(f"{s} {int((fused.split == s).sum())}" for s in ("train", "val", "test"))
    )


if __name__ == "__main__":
    run_main(main)

"""Stage flip: horizontal-flip doubling of the chosen splits (real and synthetic files alike).

Flips run on every core (rebalance.core.pool) and are packed, in manifest order, into
data/flipped/shards/flip-*.tar (manifest.csv gives each flip's shard, offset and size; stage fuse
unpacks them): one DVC file per few hundred MB, not one per flip. Each flip also yields its
fingerprint, written to data/flipped/fingerprints.csv so that fuse's leak check need not decode it.
"""

from __future__ import annotations

from functools import partial

from rebalance import config
from rebalance.core import atomic, manifest, paths
from rebalance.core.errors import run_main
from rebalance.core.pool import pimap
from rebalance.dataset import duplicates, shards
from rebalance.dataset.flips import FINGERPRINTS, as_jpeg, flip_file, flipped_path


def main() -> None:
    params = config.load()
    flip = params.flip
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    synthetic = manifest.read(paths.SYNTHESIZED / manifest.FILENAME)
    # (its bytes: a file or a sample packed in a tar, its path in data/fused, its name as a source, its row)
    inputs = [(paths.RAW / r.path, f"{r.split}/{r.path}", r.path, r) for r in real.itertuples()]
    inputs += [(shards.source(paths.SYNTHESIZED, r), r.path, r.path, r) for r in synthetic.itertuples()]
    chosen = [i for i in inputs if flip.enabled and i[3].split in flip.splits]
    prints = []
    with atomic.output_dir(paths.FLIPPED) as out:
        with shards.Writer(out, "flip", shards.SHARD_MB) as packed:  # flips streamed into tars, in order
            make = partial(flip_file, fmt=flip.format, quality=flip.jpeg_quality)
            done = pimap(make, [file for file, *_ in chosen], "flip", params.compute.processes)
            for (file, fused_path, source_name, r), (data, sha, pixels, phash) in zip(chosen, done):
                path = flipped_path(fused_path, as_jpeg(file, flip.format))
                row = manifest.row(
                    path=path,
                    split=r.split,
                    label=r.label,
                    origin="flip",
                    source=source_name,
                    root=r.root,
                    sha256=sha,
                )
                packed.add(row, data)
                prints.append({"path": path, "sha256": sha, "pixels": pixels, "phash": phash})
        rows = shards.table(packed.rows)  # with each flip's shard, offset and size
        manifest.write(rows, out / manifest.FILENAME)
        duplicates.write_table(prints, out / FINGERPRINTS)
    print(f"flip: {len(rows)} flipped images")


if __name__ == "__main__":
    run_main(main)

"""Stage flip: horizontal-flip doubling of the chosen splits (real and synthetic files alike).

Flips run on every core (stages.core.pool); each also yields its fingerprint, written to
data/flipped/fingerprints.csv so that stage fuse's leak check reads it instead of decoding again.
"""

from __future__ import annotations

from stages.core import atomic, manifest, params as params_mod, paths
from stages.core.errors import run_main
from stages.core.pool import pmap
from stages.dataset import duplicates
from stages.dataset.flips import FINGERPRINTS, flip_file, flipped_path


def main() -> None:
    params = params_mod.load()
    flip = params["flip"]
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    synthetic = manifest.read(paths.SYNTHESIZED / manifest.FILENAME)
    # (file on disk, its path in data/fused, its name as a source, its row)
    inputs = [(paths.RAW / r.path, f"{r.split}/{r.path}", r.path, r) for r in real.itertuples()]
    inputs += [(paths.SYNTHESIZED / r.path, r.path, r.path, r) for r in synthetic.itertuples()]
    chosen = [i for i in inputs if flip["enabled"] and i[3].split in flip["splits"]]
    rows, prints = [], []
    with atomic.output_dir(paths.FLIPPED) as out:
        jobs = [(file, out / flipped_path(fused_path)) for file, fused_path, _, _ in chosen]
        for dst in {dst.parent for _, dst in jobs}:
            dst.mkdir(parents=True, exist_ok=True)
        done = pmap(flip_file, jobs, "flip", params["compute"]["processes"])
        for (_, fused_path, source_name, r), (sha, pixels, phash) in zip(chosen, done):
            path = flipped_path(fused_path)
            rows.append(
                manifest.row(
                    path=path,
                    split=r.split,
                    label=r.label,
                    origin="flip",
                    source=source_name,
                    root=r.root,
                    sha256=sha,
                )
            )
            prints.append({"path": path, "sha256": sha, "pixels": pixels, "phash": phash})
        manifest.write(rows, out / manifest.FILENAME)
        duplicates.write_table(prints, out / FINGERPRINTS)
    print(f"flip: {len(rows)} flipped images")


if __name__ == "__main__":
    run_main(main)

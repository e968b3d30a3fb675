"""Stage flip: horizontal-flip doubling of the chosen splits (real and synthetic files alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages import atomic, manifest, params as params_mod
from stages.errors import run_main
from stages.images import load_array, save_png

RAW_DIR = Path("data/raw")
COUNTED = Path("data/counted")
SYNTH = Path("data/synthesized")
OUT_DIR = Path("data/flipped")


def flipped_path(fused_path: str) -> str:
    p = Path(fused_path)
    return (p.parent / f"{p.stem}_flip.png").as_posix()


def main() -> None:
    params = params_mod.load()
    flip = params["flip"]
    real = manifest.read(COUNTED / manifest.FILENAME)
    synthetic = manifest.read(SYNTH / manifest.FILENAME)
    # (file on disk, its path in data/fused, its name as a source, its row)
    inputs = [(RAW_DIR / r.path, f"{r.split}/{r.path}", r.path, r) for r in real.itertuples()]
    inputs += [(SYNTH / r.path, r.path, r.path, r) for r in synthetic.itertuples()]
    rows = []
    with atomic.output_dir(OUT_DIR) as out:
        if flip["enabled"]:
            for file, fused_path, source_name, r in inputs:
                if r.split not in flip["splits"]:
                    continue
                path = flipped_path(fused_path)
                sha = save_png(np.ascontiguousarray(load_array(file)[:, ::-1]), out / path)
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
        manifest.write(rows, out / manifest.FILENAME)
    print(f"flip: {len(rows)} flipped images")


if __name__ == "__main__":
    run_main(main)

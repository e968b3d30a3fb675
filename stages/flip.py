"""Stage flip: horizontal-flip doubling of the chosen splits (real and synthetic files alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.core import atomic, manifest, params as params_mod, paths
from stages.core.errors import run_main
from stages.core.images import load_array, save_png
from stages.core.progress import progress


def flipped_path(fused_path: str) -> str:
    p = Path(fused_path)
    return (p.parent / f"{p.stem}_flip.png").as_posix()


def main() -> None:
    params = params_mod.load()
    flip = params["flip"]
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    synthetic = manifest.read(paths.SYNTHESIZED / manifest.FILENAME)
    # (file on disk, its path in data/fused, its name as a source, its row)
    inputs = [(paths.RAW / r.path, f"{r.split}/{r.path}", r.path, r) for r in real.itertuples()]
    inputs += [(paths.SYNTHESIZED / r.path, r.path, r.path, r) for r in synthetic.itertuples()]
    rows = []
    with atomic.output_dir(paths.FLIPPED) as out:
        if flip["enabled"]:
            for file, fused_path, source_name, r in progress(inputs, "flip"):
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

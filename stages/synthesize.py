"""Stage synthesize: fill each class's train deficit with generated images, per method share."""

from __future__ import annotations

import json
from pathlib import Path

from stages import atomic, manifest, params as params_mod, synth
from stages.errors import run_main

RAW_DIR = Path("data/raw")
COUNTED = Path("data/counted")
OUT_DIR = Path("data/synthesized")


def main() -> None:
    params = params_mod.load()
    real = manifest.read(COUNTED / manifest.FILENAME)
    quota = json.loads((COUNTED / "plan.json").read_text())["generated"]
    train_real = real[real.split == "train"].reset_index(drop=True)
    rows: list[dict] = []
    with atomic.output_dir(OUT_DIR) as out:
        ctx = synth.Context(params=params, train_real=train_real, raw_dir=RAW_DIR, out_dir=out)
        for label, per_method in quota.items():
            for method, n in per_method.items():
                if n > 0:
                    rows += synth.get(method).generate(ctx, label, list(range(n)))
                    print(f"synthesize: {label}: {n} by {method}")
        manifest.write(rows, out / manifest.FILENAME)


if __name__ == "__main__":
    run_main(main)

"""Stage count: per-class counts, the stratified split and the balancing plan."""

from __future__ import annotations

from pathlib import Path

from stages import atomic, manifest, params as params_mod, plan
from stages.errors import run_main
from stages.images import sha256_file

RAW_DIR = Path("data/raw")
OUT_DIR = Path("data/counted")
COUNTS = Path("metrics/counts.json")


def main() -> None:
    params = params_mod.load()
    images = plan.real_images(params, RAW_DIR)
    the_plan = plan.build(params, images)
    rows = [
        manifest.row(
            path=name,
            split=the_plan["assignment"][name],
            label=label,
            origin="real",
            source=name,
            root=name,
            sha256=sha256_file(RAW_DIR / name),
        )
        for name, label in images
    ]
    with atomic.output_dir(OUT_DIR) as out:
        manifest.write(rows, out / manifest.FILENAME)  # paths relative to data/raw
        atomic.write_json(out / "plan.json", plan.counts_json(the_plan))
    atomic.write_json(COUNTS, plan.counts_json(the_plan))
    print(plan.balance_table(plan.counts_json(the_plan)))


if __name__ == "__main__":
    run_main(main)

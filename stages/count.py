"""Stage count: per-class counts, the stratified split and the balancing plan."""

from __future__ import annotations

from stages.core import atomic, manifest, params as params_mod, paths
from stages.core.errors import run_main
from stages.core.hashing import sha256_file
from stages.dataset import plan


def main() -> None:
    params = params_mod.load()
    images = plan.real_images(params, paths.RAW)
    the_plan = plan.build(params, images)
    rows = [
        manifest.row(
            path=name,
            split=the_plan["assignment"][name],
            label=label,
            origin="real",
            source=name,
            root=name,
            sha256=sha256_file(paths.RAW / name),
        )
        for name, label in images
    ]
    counts = plan.counts_json(the_plan)
    with atomic.output_dir(paths.COUNTED) as out:
        manifest.write(rows, out / manifest.FILENAME)  # paths relative to data/raw
        atomic.write_json(out / paths.PLAN.name, counts)
    atomic.write_json(paths.COUNTS, counts)
    print(plan.balance_table(counts))


if __name__ == "__main__":
    run_main(main)

"""Stage count: per-class counts, the split (duplicates and groups kept together) and the plan."""

from __future__ import annotations

from rebalance import config
from rebalance.core import atomic, manifest, paths
from rebalance.core.errors import run_main
from rebalance.core.hashing import sha256_file
from rebalance.dataset import duplicates, plan


def main() -> None:
    params = config.load()
    real = plan.real_images(params, paths.RAW)
    the_plan = plan.build(params, real)
    rows, prints = [], []
    for (name, label), fp in zip(real.images, real.prints):
        sha = real.sha256[name] if name in real.sha256 else sha256_file(paths.RAW / name)
        prints.append(
            {"path": name, "sha256": sha, "pixels": fp.pixels, "phash": duplicates.phash_hex(fp.phash)}
        )
        if name not in the_plan["assignment"]:
            continue  # a val/test copy of an image in an earlier official split, or sampled out
        rows.append(
            manifest.row(
                path=name,
                split=the_plan["assignment"][name],
                label=label,
                origin="real",
                source=name,
                root=name,
                sha256=sha,
            )
        )
    counts = plan.counts_json(the_plan)
    with atomic.output_dir(paths.COUNTED) as out:
        manifest.write(rows, out / manifest.FILENAME)  # paths relative to data/raw
        atomic.write_json(out / paths.PLAN.name, counts)
        duplicates.write_table(prints, out / paths.FINGERPRINTS.name)
    atomic.write_json(paths.COUNTS, counts)
    shown = 20
    for group in counts["duplicates"][:shown]:
        where = ", ".join(f"{n} ({the_plan['assignment'].get(n, 'left out')})" for n in group)
        print(f"duplicates: {where}")
    if len(counts["duplicates"]) > shown:
        print(f"... and {len(counts['duplicates']) - shown} more duplicate groups (all in {paths.COUNTS})")
    limits = params.count.max_per_class
    for label, n in counts["sampled_out"].items():
        print(f"count.max_per_class: {n} {label} images left out (at most {limits[label]} kept)")
    for line in plan.drawn_lines(counts) + plan.quota_lines(counts) + plan.kept_test_lines(counts):
        print(line)
    for warning in counts["warnings"] + plan.ratio_warnings(counts, params.count.max_synthetic_ratio):
        print(f"warning: {warning}")
    print(
        f"count: {len(rows)} real images, {counts['split_method']} split, "
        f"{len(counts['duplicates'])} duplicate groups"
    )
    print(plan.balance_table(counts))


if __name__ == "__main__":
    run_main(main)

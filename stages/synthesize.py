"""Stage synthesize: fill each class's train deficit with generated images, per method share.

Each method (rebalance/synth/) is prepared once, when a class first needs it. The images are packed,
in path order, into data/synthesized/shards/synth-*.tar (manifest.csv gives each image's shard,
offset and size; rebalance/dataset/shards.py): stage fuse is their only per-file home, so DVC tracks
each synthetic image once, as it does the flips. Incremental:
data/synthesized is a persistent output (dvc.yaml `persist: true`); each row's
`method.cache_key(label, index)` is stored in its `detail` JSON, and on the next run an image whose
key, path and checksum still match is taken from the last run's tars (or file) instead of being
regenerated. An image a reviewer rejected (reviews/<dataset.name>.csv) changes its slot's seeds,
so the slot is regenerated. Everything else is generated, files no longer planned disappear,
and the new folder replaces the old one atomically. Also writes the lesion-edit sample grid.

Curated (rebalance/synth/curate.py): the judge (stage judge) scores every new image, and the
filter (`synthesize.filter`) sends a rejected slot back with the next sub-seed, up to max_tries,
then leaves it empty; the scores go into each row's `detail`, the counts to metrics/filter.json,
kept beside rejected images to metrics/plots/filter/<method>_<class>.png. A slot's rejected first
try is packed into data/synthesized/shards/unfiltered-*.tar; unfiltered.csv lists every planned
slot's first try (those tars, or the kept image where it passed at once): the release without
the filter, for the `balanced_unfiltered` variant.

Many processes (`synthesize.processes`, or started by `accelerate launch -m stages.synthesize`):
each generates its share of every class's images (whole batches, rebalance/core/ranks.py) into a
part folder; the first process links the reused files, waits, then merges the parts into the
output. An image depends only on its seed and its batch, so the output is the same bytes.

Measured: every method's generate calls are timed (rebalance/synth/speed.py); the first process's
seconds (and dollars) per image go to metrics/synthesis_speed.json, which `rebalance plan` uses.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from functools import partial
from pathlib import Path

import pandas as pd

from rebalance import config
from rebalance.core import atomic, device, manifest, paths, ranks
from rebalance.core.errors import run_main
from rebalance.core.images import save_png
from rebalance.dataset import duplicates, shards
from rebalance.review import decisions
from rebalance.synth import methods as synth_methods
from rebalance.synth.base import Context, Method
from rebalance.synth.curate import UNFILTERED, Curator, contact_sheet
from rebalance.synth.judge import Judge
from rebalance.synth.reuse import fill, previous_rows, take_over
from rebalance.synth.speed import Timed, write as write_speed


def main() -> None:
    params = config.load()
    processes = params.synthesize.processes
    if processes > 1 and not ranks.launched():  # dvc repro: launch this stage's processes
        sys.exit(ranks.relaunch("stages.synthesize", processes))
    world = ranks.World.current(cpu=device.select(params.compute.device).type == "cpu")
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    quota = json.loads(paths.PLAN.read_text())["generated"]
    train_real = real[real.split == "train"].reset_index(drop=True)
    old = previous_rows(paths.SYNTHESIZED)
    old_first = previous_rows(paths.SYNTHESIZED, paths.UNFILTERED_MANIFEST)  # rejected first tries
    rows: list[dict] = []
    with atomic.output_dir(paths.SYNTHESIZED) if world.main else own_part(world) as out:
        held_out = real[real.split != "train"].reset_index(drop=True)
        retries = decisions.retries(decisions.read(decisions.path_for(params)))  # rejected: new sub-seed
        ctx = Context(
            params=params,
            train_real=train_real,
            raw_dir=paths.RAW,
            out_dir=out,
            held_out=held_out,
            retries=retries,
        )
        prints = duplicates.read_table(paths.FINGERPRINTS)  # stage count's perceptual hashes
        judge = Judge.load(paths.JUDGE, device.runtime(params.compute))
        train_hashes = {p: prints[p][1].phash for p in sorted(train_real.path)}
        curator = Curator(judge, paths.JUDGE, params.synthesize.filter, params.assess.near_copy_bits,
                          train_hashes, ctx)  # fmt: skip
        for path, tries in curator.tries_before(old, set(old_first)).items():  # the last run's kept sub-seeds
            ctx.retries[path] = ctx.retries.get(path, 0) + tries
        methods: dict[str, Method] = {}  # each prepared once, when first needed
        for label, per_method in quota.items():
            for name, n in per_method.items():
                if n > 0:
                    if name not in methods:
                        methods[name] = Timed(synth_methods.prepare(name, ctx))
                    made, reused = fill(methods[name], name, label, n, old, paths.SYNTHESIZED, out, world)
                    rows += made
                    here = len(made) - (reused if world.main else 0)
                    who = "" if world.size == 1 else f" by process {world.rank} of {world.size}"
                    print(f"synthesize: {label}: {n} by {name} ({reused} reused, {here} generated{who})")
        if not world.main:  # hand the share to the first process, which merges
            atomic.write_json(out / PART_ROWS, rows)
            world.wait()
            return
        world.wait()
        rows += merge_parts(world, out)
        rows, first = curate(curator, methods, quota, rows, out, partial(restore_first, old_first))
        where = device.runtime(params.compute).describe() | {"processes": world.size}
        write_speed(paths.SYNTHESIS_SPEED, methods, where)  # this process's seconds per image
        grid = lesion_edit_grid(rows, out, params.dataset.classes, params.dataset.fit)
        kept = pack(rows, out, "synth")
        manifest.write(kept, out / manifest.FILENAME)
        at_once = kept[[json.loads(d or "{}").get("judge", {}).get("tries", 0) == 0 for d in kept.detail]]
        unfiltered = pd.concat([at_once, pack(first, out, "unfiltered", out / UNFILTERED)])
        manifest.write(unfiltered.sort_values("path").reset_index(drop=True), out / paths.UNFILTERED_MANIFEST)
    save_png(grid, paths.LESION_EDIT_GRID)


def curate(
    curator: Curator, methods: dict[str, Method], quota: dict, rows: list[dict], out: Path, restore
) -> tuple[list[dict], list[dict]]:
    """Every method's images of every class through the judge and the filter (the first process,
    after the merge); metrics/filter.json and one contact sheet per method and class.
    (kept rows, rows of the rejected first tries in out/unfiltered/)."""
    kept, first, report = [], [], {}
    with atomic.output_dir(paths.PLOTS / "filter") as sheets:
        for label, per_method in quota.items():
            for name, n in per_method.items():
                if n <= 0:
                    continue
                mine = [r for r in rows if r["label"] == label and r["origin"] == name]
                rows_kept, outcome = curator.curate(methods[name], name, label, n, mine, out, restore)
                kept += rows_kept
                first += outcome.first.values()
                report.setdefault(name, {})[label] = outcome.report()
                contact_sheet(label, name, outcome, sheets / f"{name}_{label}.png")
                print(f"synthesize: filter {label}/{name}: {outcome.report()}")
    cfg = curator.cfg
    atomic.write_json(
        paths.FILTER,
        {"filter": cfg.model_dump() if cfg else None, "near_copy_bits": curator.near_bits}
        | {"judge_real_val_accuracy": curator.judge.meta.get("real_val_accuracy"), "per_method": report},
    )
    return kept, first


def pack(rows: list[dict], out: Path, name: str, files: Path | None = None) -> pd.DataFrame:
    """The files of `rows` under `files` (default `out`), in path order, into
    out/shards/<name>-*.tar (the same rows give the same tar bytes); the files go. The rows with
    each image's shard, offset and size."""
    files = files or out
    with shards.Writer(out, name, shards.SHARD_MB) as packed:
        for r in sorted(rows, key=lambda r: r["path"]):
            packed.add({c: r[c] for c in manifest.COLUMNS}, (files / r["path"]).read_bytes())
    for r in rows:
        (files / r["path"]).unlink()
    emptied = {p for r in rows for p in Path(r["path"]).parents if p != Path(".")}
    for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # a folder holding anything else stays
            (files / folder).rmdir()
    if files != out:
        with contextlib.suppress(OSError):
            files.rmdir()
    return shards.table(packed.rows)


def restore_first(old_first: dict[str, dict], path: str, dst: Path) -> dict | None:
    """The last run's rejected first try of slot `path` put at `dst`; its row (None: not kept)."""
    return take_over(old_first[path], paths.SYNTHESIZED, dst) if path in old_first else None


PART_ROWS = "rows.json"


def part_dir(rank: int) -> Path:
    """Where process `rank` (> 0) of a launched run writes its share before the merge."""
    return paths.SYNTHESIZED.with_name(f".{paths.SYNTHESIZED.name}.part{rank}")


@contextlib.contextmanager
def own_part(world: ranks.World):
    """A fresh part folder for this process (a killed earlier run's is replaced)."""
    folder = part_dir(world.rank)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder


def merge_parts(world: ranks.World, out: Path) -> list[dict]:
    """Link the other processes' images into `out`; their rows. The part folders go away."""
    rows: list[dict] = []
    for rank in range(1, world.size):
        folder = part_dir(rank)
        part = json.loads((folder / PART_ROWS).read_text())
        for r in part:
            atomic.link_or_copy(folder / r["path"], out / r["path"])
        rows += part
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def lesion_edit_grid(rows: list[dict], out: Path, classes: list[str], fit: str):
    """Sources beside their lesion edits (a tile that says so when there are none)."""
    from rebalance.synth.lesion_edit import sample_grid

    return sample_grid(rows, paths.RAW, out, classes, fit=fit)


if __name__ == "__main__":
    run_main(main)

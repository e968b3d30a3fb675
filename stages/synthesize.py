"""Stage synthesize: fill each class's train deficit with generated images, per method share.

Each method (stages/synth/) is prepared once, when a class first needs it. Incremental:
data/synthesized is a persistent output (dvc.yaml `persist: true`); each row's
`method.cache_key(label, index)` is stored in its `detail` JSON, and on the next run a file whose
key, path and checksum still match is hard-linked into the new output instead of being
regenerated. An image a reviewer rejected (reviews/<dataset.name>.csv) changes its slot's seeds,
so the slot is regenerated. Everything else is generated, files no longer planned disappear,
and the new folder replaces the old one atomically. Also writes the lesion-edit sample grid.
"""

from __future__ import annotations

import json
from pathlib import Path

from stages.core import atomic, manifest, params as params_mod, paths
from stages.core.errors import run_main
from stages.core.hashing import sha256_file
from stages.core.images import save_png
from stages.review import decisions
from stages.synth import methods as synth_methods
from stages.synth.base import Context, Method, output_path


def previous_rows(out_dir: Path) -> dict[str, dict]:
    """Rows of the last run's manifest by path (empty when there is none or it is unreadable)."""
    path = out_dir / manifest.FILENAME
    if not path.exists():
        return {}
    try:
        return {r["path"]: r for r in manifest.read(path).to_dict("records")}
    except Exception:  # noqa: BLE001 - a damaged old output only means nothing is reused
        return {}


def stored_key(row: dict) -> str | None:
    try:
        return json.loads(row["detail"]).get("key")
    except (ValueError, AttributeError):
        return None


def with_key(row: dict, key: str) -> dict:
    detail = json.loads(row["detail"]) if row["detail"] else {}
    return {**row, "detail": json.dumps({**detail, "key": key}, sort_keys=True)}


def fill(
    method: Method, name: str, label: str, n: int, old: dict[str, dict], old_dir: Path, out_dir: Path
) -> tuple[list, int]:
    """Rows for images 0..n-1 of `label` by `method`, reusing unchanged files; (rows, reused)."""
    keys = {i: method.cache_key(label, i) for i in range(n)}
    rows, todo = [], []
    for i, key in keys.items():
        path = output_path(name, label, i)
        prev = old.get(path)
        if (
            prev
            and stored_key(prev) == key
            and (old_dir / path).is_file()
            and sha256_file(old_dir / path) == prev["sha256"]
        ):
            atomic.link_or_copy(old_dir / path, out_dir / path)
            rows.append(prev)
        else:
            todo.append(i)
    made = method.generate(label, todo) if todo else []
    by_path = {output_path(name, label, i): keys[i] for i in todo}
    rows += [with_key(r, by_path[r["path"]]) for r in made]
    return rows, n - len(todo)


def main() -> None:
    params = params_mod.load()
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    quota = json.loads(paths.PLAN.read_text())["generated"]
    train_real = real[real.split == "train"].reset_index(drop=True)
    old = previous_rows(paths.SYNTHESIZED)
    rows: list[dict] = []
    with atomic.output_dir(paths.SYNTHESIZED) as out:
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
        methods: dict[str, Method] = {}  # each prepared once, when first needed
        for label, per_method in quota.items():
            for name, n in per_method.items():
                if n > 0:
                    if name not in methods:
                        methods[name] = synth_methods.prepare(name, ctx)
                    made, reused = fill(methods[name], name, label, n, old, paths.SYNTHESIZED, out)
                    rows += made
                    print(f"synthesize: {label}: {n} by {name} ({reused} reused, {n - reused} generated)")
        manifest.write(rows, out / manifest.FILENAME)
        grid = lesion_edit_grid(rows, out, params["dataset"]["classes"])
    save_png(grid, paths.LESION_EDIT_GRID)


def lesion_edit_grid(rows: list[dict], out: Path, classes: list[str]):
    """Sources beside their lesion edits (a blank tile when there are none)."""
    from stages.synth.lesion_edit import sample_grid

    return sample_grid(rows, paths.RAW, out, classes)


if __name__ == "__main__":
    run_main(main)

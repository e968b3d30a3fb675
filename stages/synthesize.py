"""Stage synthesize: fill each class's train deficit with generated images, per method share.

Incremental: data/synthesized is a persistent output (dvc.yaml `persist: true`). A method that
exposes `cache_key(ctx, label, index)` has each row's key stored in its `detail` JSON; on the
next run a file whose key, path and checksum still match is hard-linked into the new output
instead of being regenerated. Everything else is generated, files no longer planned disappear,
and the new folder replaces the old one atomically. Also writes the lesion-edit sample grid.
"""

from __future__ import annotations

import json
from pathlib import Path

from stages import atomic, manifest, params as params_mod, synth
from stages.errors import run_main
from stages.images import save_png, sha256_file

RAW_DIR = Path("data/raw")
COUNTED = Path("data/counted")
OUT_DIR = Path("data/synthesized")
GRID = Path("metrics/plots/lesion_edit_grid.png")


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
    ctx: synth.Context, method: str, label: str, n: int, old: dict[str, dict], old_dir: Path
) -> tuple[list, int]:
    """Rows for images 0..n-1 of `label` by `method`, reusing unchanged files; (rows, reused)."""
    module = synth.get(method)
    if not hasattr(module, "cache_key"):
        return module.generate(ctx, label, list(range(n))), 0
    keys = {i: module.cache_key(ctx, label, i) for i in range(n)}
    rows, todo = [], []
    for i, key in keys.items():
        path = synth.output_path(method, label, i)
        prev = old.get(path)
        if (
            prev
            and stored_key(prev) == key
            and (old_dir / path).is_file()
            and sha256_file(old_dir / path) == prev["sha256"]
        ):
            atomic.link_or_copy(old_dir / path, ctx.out_dir / path)
            rows.append(prev)
        else:
            todo.append(i)
    made = module.generate(ctx, label, todo) if todo else []
    by_path = {synth.output_path(method, label, i): keys[i] for i in todo}
    rows += [with_key(r, by_path[r["path"]]) for r in made]
    return rows, n - len(todo)


def main() -> None:
    params = params_mod.load()
    real = manifest.read(COUNTED / manifest.FILENAME)
    quota = json.loads((COUNTED / "plan.json").read_text())["generated"]
    train_real = real[real.split == "train"].reset_index(drop=True)
    old = previous_rows(OUT_DIR)
    rows: list[dict] = []
    with atomic.output_dir(OUT_DIR) as out:
        ctx = synth.Context(params=params, train_real=train_real, raw_dir=RAW_DIR, out_dir=out)
        for label, per_method in quota.items():
            for method, n in per_method.items():
                if n > 0:
                    made, reused = fill(ctx, method, label, n, old, OUT_DIR)
                    rows += made
                    print(f"synthesize: {label}: {n} by {method} ({reused} reused, {n - reused} generated)")
        manifest.write(rows, out / manifest.FILENAME)
        from stages.synth import lesion_edit  # the grid is lesion_edit's picture; blank without it

        grid = lesion_edit.sample_grid(rows, RAW_DIR, out, params["dataset"]["classes"])
    save_png(grid, GRID)


if __name__ == "__main__":
    run_main(main)

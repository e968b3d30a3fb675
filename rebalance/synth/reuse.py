"""Reuse of generated images across runs: an image whose cache key, path and checksum still match
the last run's is taken over (a hard link, or its bytes out of the last run's shard) instead of
being generated again; `fill` makes the rest. A key (`method.cache_key(label, index)`) is stored in
each row's `detail` JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rebalance.core import atomic, manifest, ranks
from rebalance.core.errors import RebalanceError
from rebalance.core.hashing import sha256_bytes
from rebalance.dataset import shards
from rebalance.synth.base import Method, output_path


def previous_rows(out_dir: Path, name: str = manifest.FILENAME) -> dict[str, dict]:
    """Rows of the last run's manifest `name` by path (empty when there is none or it is unreadable)."""
    path = out_dir / name
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


def reusable(path: str, key: str, old: dict[str, dict], old_dir: Path) -> bool:
    """The last run's image at `path` (packed in its tars, or a file) was made with the same
    cache key and is intact."""
    prev = old.get(path)
    if not prev or stored_key(prev) != key:
        return False
    try:
        return sha256_bytes(shards.read_bytes(old_dir, prev)) == prev["sha256"]
    except (OSError, ValueError, RebalanceError):  # gone, or a damaged row: made again
        return False


def take_over(prev: dict, old_dir: Path, dst: Path) -> dict:
    """Put the last run's image of row `prev` at `dst` (a link to a file, or its bytes out of a
    tar); its row without the old shard columns (it is packed again)."""
    src = shards.source(old_dir, prev)
    if isinstance(src, shards.Packed):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    else:
        atomic.link_or_copy(src, dst)
    return {k: v for k, v in prev.items() if k not in manifest.SHARD_COLUMNS}


def fill(
    method: Method,
    name: str,
    label: str,
    n: int,
    old: dict[str, dict],
    old_dir: Path,
    out_dir: Path,
    world: ranks.World = ranks.ALONE,
) -> tuple[list, int]:
    """Rows for images 0..n-1 of `label` by `method`, reusing unchanged files; (rows, reused).
    Among several processes, this one generates its `world.share` of the rest (whole batches:
    `method.block_size`); the first process links the reused files."""
    keys = {i: method.cache_key(label, i) for i in range(n)}
    reused = {i for i, key in keys.items() if reusable(output_path(name, label, i), key, old, old_dir)}
    rows = []
    if world.main:
        for i in sorted(reused):
            path = output_path(name, label, i)
            rows.append(take_over(old[path], old_dir, out_dir / path))
    todo = world.share([i for i in range(n) if i not in reused], getattr(method, "block_size", 1))
    made = method.generate(label, todo) if todo else []
    by_path = {output_path(name, label, i): keys[i] for i in todo}
    rows += [with_key(r, by_path[r["path"]]) for r in made]
    return rows, len(reused)

"""Stage scan: list the source folder, so that stage raw re-runs when the user's images change.

DVC cannot depend on a folder named by a param (`raw.source`), so this stage runs on every
`dvc repro` (`always_changed`) and writes data/source.json: every file under the source as
[path, size, mtime_ns], sorted, and the metadata CSV's size and mtime (for `raw.source: demo`,
the demo's params). Stage raw depends on that file: it re-runs exactly when the listing changes.
The file is rewritten only when its content changes.
"""

from __future__ import annotations

from pathlib import Path

from rebalance import config
from rebalance.core import atomic
from rebalance.core.errors import run_main
from rebalance.dataset import listing


def main() -> None:
    params = config.load()
    found = listing.listing(params)
    text = listing.format_listing(found)
    path = listing.LISTING
    changed = not path.is_file() or path.read_text() != text
    if changed:
        atomic.write_text(path, text)
    source = params.raw.source
    what = "the demo" if source == "demo" else f"{len(found.get('files') or [])} entries in {source}"
    if found.get("files", []) is None:
        problem = "is not a folder" if Path(source).is_file() else "not found"
        what = f"{source} {problem} (stage raw says what to fix)"
    print(f"scan: {what}, {'changed' if changed else 'unchanged'} ({path})")


if __name__ == "__main__":
    run_main(main)

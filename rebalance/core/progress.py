"""Progress of long loops: a tqdm bar (rate, time left) on a terminal; one summary line otherwise
(for loops that took at least SUMMARY_AFTER_S), so CI and `dvc repro` logs stay readable."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
SUMMARY_AFTER_S = 1.0  # shorter loops print no summary line in logs


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "img") -> Iterator[T]:
    """Yield `items`, showing progress under `desc` (e.g. "synthesize level3 lesion_edit")."""
    if sys.stderr.isatty():
        yield from tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True, leave=False)
        return
    start, n = time.perf_counter(), 0
    for item in items:
        yield item
        n += 1
    seconds = time.perf_counter() - start
    if seconds < SUMMARY_AFTER_S:
        return
    rate = f", {n / seconds:.1f} {unit}/s" if seconds > 0 and n else ""
    print(f"{desc}: {n} {unit} in {seconds:.1f} s{rate}", file=sys.stderr, flush=True)

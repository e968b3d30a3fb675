"""Every core for per-file work (ingest verification, detect, flip): an ordered process-pool map.

`pmap(fn, items, desc, processes)` returns `[fn(x) for x in items]` (`pimap` yields them one by
one), computed in `processes` worker processes (`compute.processes`; null: every core) in chunks,
with a progress bar. Results come back in input order, so a stage's outputs do not depend on the
number of processes. Small inputs (or processes == 1) run in the stage's own process: a pool costs
more than it saves there.
`fn` must be a module-level function (it is sent to the workers by name).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from rebalance.core.progress import progress

T = TypeVar("T")
R = TypeVar("R")

INLINE_BELOW = 64  # items: fewer run in this process
CHUNKS_PER_PROCESS = 8  # work split finer than one chunk per process, so a slow chunk does not stall


def cores(processes: int | None = None) -> int:
    """The number of worker processes: `processes`, or every core this process may use."""
    if processes:
        return processes
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def pmap(
    fn: Callable[[T], R], items: Sequence[T], desc: str, processes: int | None = None, unit: str = "img"
) -> list[R]:
    """[fn(x) for x in items], spread over `processes` processes (see the module doc)."""
    return list(pimap(fn, items, desc, processes, unit))


def pimap(
    fn: Callable[[T], R], items: Sequence[T], desc: str, processes: int | None = None, unit: str = "img"
) -> Iterator[R]:
    """pmap's results one by one, in input order, as they come (for a caller that streams them to
    disk instead of holding them all)."""
    n = cores(processes)
    if n <= 1 or len(items) < INLINE_BELOW:
        yield from (fn(x) for x in progress(items, desc, total=len(items), unit=unit))
        return
    chunksize = max(1, len(items) // (n * CHUNKS_PER_PROCESS))
    ex = ProcessPoolExecutor(max_workers=n, initializer=_leave_interrupts_to_the_stage)
    try:
        yield from progress(ex.map(fn, items, chunksize=chunksize), desc, total=len(items), unit=unit)
    finally:  # on Ctrl-C: no chunk not yet started runs; the workers end after their current one
        ex.shutdown(wait=True, cancel_futures=True)


def _leave_interrupts_to_the_stage() -> None:
    """A worker ignores Ctrl-C: the stage's process stops the pool and says so in one line (each
    worker would otherwise print a KeyboardInterrupt traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

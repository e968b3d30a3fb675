"""Measured throughput of each synthesis method on this machine: metrics/synthesis_speed.json.

Stage synthesize times every `generate` call of a method (first tries and the filter's new tries
alike) and counts the images it made; a row's `detail.dollars` (the command method's price, a
plugin's `dollars_per_image`) gives the price per image where one is known. `rebalance plan`
estimates with these numbers, falling back to `count.seconds_per_image` / `dollars_per_image`
for a method that never ran. A method that generated nothing in a run (every image reused) keeps
the numbers of the run that last measured it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rebalance.core import atomic


class Timed:
    """A method whose `generate` calls are timed; everything else is the method's own."""

    def __init__(self, method: Any):
        self.method = method
        self.images, self.seconds, self.dollars, self.priced = 0, 0.0, 0.0, 0

    def __getattr__(self, name: str) -> Any:  # block_size, description, ...
        return getattr(self.method, name)

    def cache_key(self, label: str, index: int) -> str:
        return self.method.cache_key(label, index)

    def generate(self, label: str, indices: list[int]) -> list[dict[str, str]]:
        started = time.perf_counter()
        rows = self.method.generate(label, indices)
        self.seconds += time.perf_counter() - started
        self.images += len(rows)
        for r in rows:
            price = json.loads(r.get("detail") or "{}").get("dollars")
            if price is not None:
                self.dollars += float(price)
                self.priced += 1
        return rows

    def report(self) -> dict[str, Any]:
        per = round(self.seconds / self.images, 4) if self.images else None
        dollars = round(self.dollars / self.priced, 6) if self.priced else None
        return {"images": self.images, "seconds": round(self.seconds, 3), "seconds_per_image": per,
                "dollars_per_image": dollars}  # fmt: skip


def write(path: Path, timed: dict[str, Timed], where: dict[str, Any]) -> None:
    """Each method's report with what it was measured on (`where`: device, processes); a method
    that made no image this run keeps its entry of the file as it was (the last measurement)."""
    try:
        old = json.loads(path.read_text()).get("per_method") or {}
    except (OSError, ValueError, AttributeError):
        old = {}
    per_method = {}
    for name, t in sorted(timed.items()):
        fresh = t.report() | {"measured_on": where}
        per_method[name] = fresh if t.images or name not in old else old[name]
    atomic.write_json(path, {"per_method": per_method})

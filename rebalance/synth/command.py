"""Synthesis method `command`: a user's command makes the images (an API client, a generator of
another framework), one call per batch of `synthesize.command.batch` consecutive slots.

Per batch: the slots' seeds go to a file (one per line), the command (`synthesize.command.cmd`,
split like a shell line, never run by a shell) runs with `{class}`, `{seeds_file}` and `{out_dir}`
replaced in each word, under `timeout_s`, its output to a log file; then `<out_dir>/<seed>.png`
is read for each slot. A timeout or a non-zero exit stops the run with a one-line error naming the
command and the class; a missing image leaves its slot empty (reported as the filter's empty
slots are). Each row's `detail` records the command, the batch's wall time per image (`seconds`)
and the price (`dollars`, synthesize.command.dollars_per_image). The model behind the command
has no training-set record unless `training_set` names a folder holding one; without it the
method is refused unless synthesize.allow_external_model (rebalance/synth/provenance.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from rebalance.core.code import code_hash
from rebalance.core.errors import RebalanceError
from rebalance.core.images import save_png
from rebalance.synth import provenance
from rebalance.synth.base import Context, output_path, synthetic_row
from rebalance.synth.plugins import as_array

METHOD = "command"
PLACEHOLDERS = ("{class}", "{seeds_file}", "{out_dir}")


class CommandRunner:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.cfg = ctx.params.synthesize.command
        if not self.cfg.cmd:
            raise RebalanceError(
                "params.yaml: synthesize.methods names command but synthesize.command.cmd is unset"
            )
        held_out = ctx.held_out if ctx.held_out is not None else pd.DataFrame(columns=["sha256"])
        allow = ctx.params.synthesize.allow_external_model
        if self.cfg.training_set is None:
            if not allow:
                raise RebalanceError(
                    f"method command ({self.cfg.cmd!r}) has no training-set record (set "
                    "synthesize.command.training_set to a folder holding training_set.json), so it may "
                    "have seen val/test images; set synthesize.allow_external_model: true to use it anyway"
                )
            self.record: dict[str, Any] = {"model": "command", "external": True}
        else:
            self.record = provenance.check_generator(self.cfg.training_set, held_out, allow)

    @property
    def block_size(self) -> int:
        return self.cfg.batch

    def cache_key(self, label: str, index: int) -> str:
        key = {
            "code": code_hash(__name__),
            "cmd": self.cfg.cmd,
            "label": label,
            "seed": self.ctx.seed(label, METHOD, index),
            "block": [index // self.block_size, self.block_size],
            "generator": self.record,
        }
        return json.dumps(key, sort_keys=True)

    def generate(self, label: str, indices: list[int]) -> list[dict[str, str]]:
        blocks: dict[int, list[int]] = {}
        for index in indices:
            blocks.setdefault(index // self.block_size, []).append(index)
        rows = []
        for batch in blocks.values():
            rows += self._batch(label, batch)
        return rows

    def _batch(self, label: str, batch: list[int]) -> list[dict[str, str]]:
        seeds = [self.ctx.seed(label, METHOD, i) for i in batch]
        scratch = Path(tempfile.mkdtemp(prefix="command-"))
        try:
            seeds_file, out_dir = scratch / "seeds.txt", scratch / "out"
            out_dir.mkdir()
            seeds_file.write_text("".join(f"{s}\n" for s in seeds))
            values = {"{class}": label, "{seeds_file}": str(seeds_file), "{out_dir}": str(out_dir)}
            argv = [fill(word, values) for word in shlex.split(self.cfg.cmd)]
            started = time.perf_counter()
            run(argv, self.cfg.cmd, label, self.cfg.timeout_s, scratch / "log.txt")
            seconds = (time.perf_counter() - started) / len(batch)
            rows = []
            for index, seed in zip(batch, seeds):
                made = out_dir / f"{seed}.png"
                if not made.is_file():
                    continue  # the slot stays empty (metrics/filter.json reports it)
                path = output_path(METHOD, label, index)
                detail = {"command": self.cfg.cmd, "generator": self.record, "seconds": round(seconds, 4),
                          "dollars": self.cfg.dollars_per_image}  # fmt: skip
                try:
                    sha = save_png(as_array(made), self.ctx.out_dir / path)
                except (OSError, ValueError) as err:
                    raise RebalanceError(
                        f"synthesize.command.cmd {self.cfg.cmd!r} for class {label}: {made.name} is no "
                        f"readable image ({err})"
                    ) from None
                rows.append(synthetic_row(path, label, METHOD, seed, sha, detail))
            return rows
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def fill(word: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        word = word.replace(placeholder, value)
    return word


def run(argv: list[str], cmd: str, label: str, timeout_s: float, log: Path) -> None:
    """Run `argv` in a session of its own (a timeout kills it and everything it started), output
    to `log`; a one-line RebalanceError on a timeout, a non-zero exit or a missing program."""
    where = f"synthesize.command.cmd {cmd!r} for class {label}"
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
        except OSError as err:
            raise RebalanceError(f"{where}: cannot start ({err.strerror or err})") from None
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RebalanceError(
                f"{where}: timed out after {timeout_s:g} s (synthesize.command.timeout_s)"
            ) from None
    if code != 0:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        last = f": {lines[-1].strip()[:200]}" if lines else ""
        raise RebalanceError(f"{where}: exited with status {code}{last}")

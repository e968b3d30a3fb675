"""Where tensors live: `compute.device` (auto: CUDA, then Apple MPS, then CPU), precision, threads.

CPU and float32 are the defaults that run anywhere; a GPU is used when present and `auto`, with
bf16 (or fp16 where bf16 is missing) autocast when `compute.precision: auto`. Random numbers that
decide an image (noise, crops, flips) are always drawn on the CPU from their seed and moved to the
device, so an image stays determined by its seed on every device (its float details may differ).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from rebalance.core.errors import RebalanceError

if TYPE_CHECKING:
    from rebalance.config.schema import Compute


def select(name: str = "auto") -> torch.device:
    """The torch device for `compute.device` (auto | cpu | cuda | cuda:N | mps). Among processes
    launched by accelerate (rebalance/core/ranks.py), `auto` and `cuda` mean this process's GPU."""
    local = os.environ.get("LOCAL_RANK")
    if name in ("auto", "cuda") and local is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(local) % torch.cuda.device_count()}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RebalanceError(
            f"params.yaml: compute.device is {name!r} but no CUDA device is visible; use auto or cpu"
        )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RebalanceError(
            "params.yaml: compute.device is 'mps' but Apple MPS is not available; use auto or cpu"
        )
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for `compute.precision` (auto | fp32 | bf16 | fp16); None = full float32."""
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return None
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context that runs matmuls and convolutions in `dtype` on `device` (no-op for None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` (on the CPU) on `device`. To a GPU through pinned memory, asynchronously: a copy from
    ordinary (pageable) memory makes the CPU wait until the GPU has finished all the work queued
    before it, so the CPU could not prepare the next step while the GPU computes this one."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def set_threads(threads: int | None) -> int:
    """torch intra-op threads: `threads`, else every core this process may use (shared out among
    the processes accelerate launched on this machine)."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


@dataclass(frozen=True)
class Runtime:
    """What a stage computes on: the device, the autocast dtype (None: float32), decode workers."""

    device: torch.device = torch.device("cpu")
    dtype: torch.dtype | None = None
    workers: int = 0

    def autocast(self):
        return autocast(self.device, self.dtype)

    def describe(self) -> dict[str, Any]:
        """For metrics files: where the numbers were made."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type
        return {
            "device": str(self.device),
            "device_name": name,
            "autocast": str(self.dtype).replace("torch.", "") if self.dtype else None,
            "threads": torch.get_num_threads(),
        }


CPU = Runtime()  # float32 on the CPU, decoding in the calling process (tests, tools)


def runtime(compute: Compute) -> Runtime:
    """The `compute` group as a Runtime; also sets torch's CPU threads."""
    set_threads(compute.threads)
    device = select(compute.device)
    return Runtime(device, autocast_dtype(device, compute.precision), compute.workers)

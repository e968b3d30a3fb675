"""Many processes of one stage (GPUs, machines) through Hugging Face accelerate.

`accelerate launch` starts the processes (on one machine, or on several with --num_machines,
--machine_rank and --main_process_ip) and sets up torch.distributed between them (NCCL on GPUs,
gloo on CPUs); `World` says which process this is and waits for the others. A stage splits its
work by `World.share`, each process writes its own share, and the first process merges them.
Why accelerate (not Ray Data): it is the launcher the Hugging Face stack under synthesis
(diffusers, peft) is built and documented for, it needs no cluster service, and a one-process run
is the same code path with a World of one.

`synthesize.processes`, `train.processes` and `generators.<name>.processes: N` make those stages
launch themselves under accelerate with N processes (one per GPU; `relaunch`), so `dvc repro`
stays the one command. Sampling shares out whole batches (`share`: the same bytes as one process);
training is data-parallel (`slice`: each process takes its part of every global batch;
`data_parallel` (DDP) or `average_gradients` (the GAN, LoRA) averages the gradients, so every
process steps with the same gradient).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


def launched() -> bool:
    """This process is one of several started by accelerate launch (or torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass
class World:
    """This process's place among the processes of one stage run (rank 0 of 1 when alone)."""

    rank: int = 0
    size: int = 1
    state: Any = None  # accelerate's PartialState when launched

    @classmethod
    def current(cls, cpu: bool) -> World:
        """The processes of this run: accelerate's PartialState (gloo on CPU) when launched."""
        if not launched():
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=cpu)
        return cls(state.process_index, state.num_processes, state)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, indices: list[int], block: int = 1) -> list[int]:
        """This process's indices: whole blocks (index // block) dealt round-robin, so that a
        method's batches are the same however many processes there are."""
        return [i for i in indices if (i // block) % self.size == self.rank]

    def wait(self) -> None:
        """Wait until every process gets here."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def slice(self, batch: list[int]) -> list[int]:
        """This process's part of a global batch (data-parallel training): every size-th index.
        The global batch, and every random draw made for it from the seed, stay those of a
        one-process run; each process computes the gradient of its part, DDP averages them."""
        return batch[self.rank :: self.size]

    def data_parallel(self, model: Any, device: Any) -> Any:
        """`model` wrapped in torch DistributedDataParallel (gradients averaged over the processes
        at every backward) when launched; the model itself when alone."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device] if getattr(device, "type", "cpu") == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def average_gradients(self, parameters: Any) -> None:
        """Average the gradients of `parameters` over the processes, in place (one all-reduce).
        For training that DDP does not suit: a GAN's discriminator, called on real and on fake
        images in one step, and LoRA adapters on a frozen base. Call after backward, before the
        optimiser step; every process then steps with the same gradient."""
        if self.size == 1:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        for g, part in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    def average_buffers(self, module: Any) -> None:
        """Average `module`'s floating-point buffers over the processes, in place: e.g. the
        BatchNorm running statistics, which each process gathers on its own part of the batches."""
        if self.size == 1:
            return
        import torch.distributed as dist

        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= self.size


ALONE = World()  # a run of one process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(module: str, processes: int) -> list[str]:
    """`accelerate launch` of `python -m module` in `processes` processes on this machine.
    (accelerate's multi-process launcher is torchrun; `--multi_gpu` selects it, and World
    chooses gloo instead of NCCL where the stage runs on the CPU.)"""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", module,
    ]  # fmt: skip


def relaunch(module: str, processes: int, args: tuple[str, ...] = ()) -> int:
    """Run this stage again as `processes` processes under accelerate; their exit status."""
    print(f"{module.split('.')[-1]}: launching {processes} processes with accelerate", flush=True)
    return subprocess.run([*launch_command(module, processes), *args], check=False).returncode

"""A small class-conditional pixel diffusion model on Hugging Face diffusers: build, train, sample.

No stage IO here: callers hand in uint8 image tensors and get uint8 image tensors back, so the
training stage, the synthesis method, the tests and the benchmark share one implementation.

Choices (measured on a 2-core CPU):
- `UNet2DModel` with `num_class_embeds = n_classes + 1`; the extra index is the "no class" token
  used for label dropout during training, which makes classifier-free guidance available.
- v-prediction with the cosine (`squaredcos_cap_v2`) schedule and an EMA of the weights: in a
  few minutes of CPU training this converged where epsilon prediction did not.
- Sampling with DDIM (eta = 0) or DPM-Solver++ (deterministic, multistep) on "trailing"
  timesteps; each UNet call is batched over images (and over cond/uncond with guidance).
- Local mode is RePaint-style: before every UNet call the region outside the mask is replaced
  by the original noised to the current timestep, so only the masked region is generated.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from torch.utils.data import Dataset

from rebalance.core import ranks
from rebalance.core.device import CPU, Runtime, to_device
from rebalance.core.progress import progress
from rebalance.learn import data

SCHEDULERS = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}
WEIGHTS = "diffusion_pytorch_model.safetensors"


def build_unet(
    resolution: int,
    n_classes: int,
    channels: Sequence[int] = (32, 64, 64),
    layers_per_block: int = 1,
    attention: bool = True,
) -> UNet2DModel:
    """A class-conditional UNet; self-attention only at the lowest resolution (cheap on CPU)."""
    n = len(channels)
    down = ["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D" if attention else "DownBlock2D"]
    up = ["AttnUpBlock2D" if attention else "UpBlock2D"] + ["UpBlock2D"] * (n - 1)
    groups = 8 if min(channels) % 8 == 0 else 1
    return UNet2DModel(
        sample_size=resolution,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        attention_head_dim=min(channels[-1], 32),
        norm_num_groups=groups,
        num_class_embeds=n_classes + 1,
        add_attention=attention,
    )


def noise_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The training noise schedule (saved with the model; samplers are built from its config)."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,
    )


def sampler(config: dict, kind: str = "ddim"):
    """A fast deterministic sampler (ddim, eta 0 | dpm = DPM-Solver++ 2M) from the training config."""
    if kind not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {kind!r}; use one of {', '.join(SCHEDULERS)}")
    extra = (
        {"clip_sample": False, "set_alpha_to_one": True}
        if kind == "ddim"
        else {"algorithm_type": "dpmsolver++"}
    )
    return SCHEDULERS[kind].from_config(config, timestep_spacing="trailing", **extra)


def to_model(images_uint8: torch.Tensor) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [-1, 1]."""
    return images_uint8.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W float in [-1, 1] -> N x H x W x 3 uint8 (rounded, clipped)."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def train(
    unet: UNet2DModel,
    images: Dataset | torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    ema_decay: float = 0.999,
    class_dropout: float = 0.1,
    hflip: bool = True,
    log: Callable[[int, float], None] | None = None,
    log_every: int = 100,
    runtime: Runtime = CPU,
    world: ranks.World = ranks.ALONE,
) -> dict:
    """Train `unet` in place (v-prediction, AdamW, warmup + cosine LR) and leave the EMA weights in it.

    images: a Dataset of 3 x H x W uint8 images at the model's resolution (rebalance/learn/data.py:
    streamed from files by `runtime.workers` processes, or in memory), or an N x H x W x 3 uint8
    tensor; labels: N class indices. The batches are drawn up front, then every other random draw
    is made on the CPU from `seed`; tensors then move to `runtime.device`. The same pixels give
    the same model whether streamed or in memory. Returns a summary (steps, final loss, seconds,
    images per second).

    Among processes launched by accelerate (`world`): data-parallel. Every process draws the
    global batch's random numbers from the seed and takes its part of the batch (`world.slice`);
    DDP averages the gradients, so the weights (and the EMA) stay the same in every process.
    """
    n_classes = unet.config.num_class_embeds - 1
    device = runtime.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sched = noise_scheduler()
    unet.to(device)
    net = world.data_parallel(unet, device)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    scaler = torch.amp.GradScaler(device.type, enabled=runtime.dtype == torch.float16)
    warmup = max(1, steps // 20)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps)))),
    )
    # foreach: one kernel per update on a GPU instead of a Python loop over every parameter (the
    # CPU keeps the loop: its float results stay those of the lock)
    ema = EMAModel(
        unet.parameters(), decay=ema_decay, use_ema_warmup=True, power=3 / 4, foreach=device.type == "cuda"
    )
    unet.train()
    if isinstance(images, torch.Tensor):
        images = data.TensorSet(images.permute(0, 3, 1, 2))
    batches = [torch.randint(0, len(images), (batch_size,), generator=gen).tolist() for _ in range(steps)]
    part = world.slice(list(range(batch_size)))  # this process's positions in every batch
    batches = [[b[i] for i in part] for b in batches]
    start, running, losses = time.perf_counter(), None, []
    stream = data.loader(images, batches, runtime)
    for step, xb in enumerate(progress(stream, "train_diffusion", total=steps, unit="step")):
        # random draws on the CPU from the seed; uint8 pixels cross to the device and become floats there
        x0, y = xb.to(device, non_blocking=True).float().div(127.5).sub(1.0), labels[batches[step]].clone()
        if hflip:
            flip = to_device((torch.rand(batch_size, generator=gen) < 0.5)[part], device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        y[(torch.rand(batch_size, generator=gen) < class_dropout)[part]] = n_classes
        noise = torch.randn((batch_size, *x0.shape[1:]), generator=gen)[part]
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=gen)[part]
        noise, t, y = (to_device(v, device) for v in (noise, t, y))
        with runtime.autocast():
            pred = net(sched.add_noise(x0, noise, t), t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(pred.float(), sched.get_velocity(x0, noise, t))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        lr_sched.step()
        ema.step(unet.parameters())
        losses.append(loss.detach())  # read every log_every steps: no wait for the GPU per step
        if (step + 1) % log_every == 0 or step + 1 == steps:
            for value in torch.stack(losses).tolist():
                running = value if running is None else 0.98 * running + 0.02 * value
            losses = []
            if log and (step + 1) % log_every == 0:
                log(step + 1, running)
    ema.copy_to(unet.parameters())
    unet.eval()
    seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "loss": round(float(running or 0.0), 5),
        "seconds": round(seconds, 1),
        "images_per_second": round(steps * batch_size / max(seconds, 1e-9), 1),
    }


def save(unet: UNet2DModel, folder: Path) -> str:
    """Save the UNet and its noise schedule with `save_pretrained`; return the checkpoint hash."""
    unet.save_pretrained(folder, safe_serialization=True)
    noise_scheduler().save_pretrained(Path(folder) / "scheduler")
    return checkpoint_hash(folder)


def load(folder: Path) -> tuple[UNet2DModel, dict]:
    """Load a saved UNet (local files only) and its training scheduler config."""
    unet = UNet2DModel.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False).eval()
    config = DDPMScheduler.load_config(Path(folder) / "scheduler", local_files_only=True)
    return unet, config


def checkpoint_hash(folder: Path) -> str:
    """sha256 of the saved weights (first 16 hex digits): names the model in manifests and keys."""
    h = hashlib.sha256((Path(folder) / WEIGHTS).read_bytes())
    h.update((Path(folder) / "config.json").read_bytes())
    return h.hexdigest()[:16]


def initial_noise(seeds: Sequence[int], shape: tuple[int, int, int]) -> torch.Tensor:
    """One noise image per seed, each from its own generator (so a batch never mixes seeds)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.inference_mode()
def sample(
    unet: UNet2DModel,
    scheduler,
    labels: Sequence[int],
    seeds: Sequence[int],
    *,
    steps: int = 25,
    guidance: float = 1.0,
    known: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
    strength: float = 1.0,
    runtime: Runtime = CPU,
) -> torch.Tensor:
    """Class-conditional sampling of one batch; returns N x H x W x 3 uint8.

    Each image's starting noise comes from its own seed. With `guidance` > 1, classifier-free
    guidance (cond and uncond in one batched call, so 2 UNet evaluations per image per step).
    Local mode: `known` (N x H x W x 3 uint8) and `mask` (N x H x W, 1 = regenerate) make the
    region outside the mask follow the noised original at every step (RePaint without jumps);
    the caller restores the exact original pixels outside the mask afterwards.
    img2img (DA-Fusion): `start` (N x H x W x 3 uint8) noised to the timestep `strength` of the
    way into the schedule (with each image's seeded noise), then only the remaining
    round(steps * strength) steps are run, class-conditioned.
    """
    res = unet.config.sample_size
    n = len(labels)
    device = runtime.device
    unet.to(device)
    x = initial_noise(seeds, (3, res, res)).to(device)  # drawn on the CPU: an image is its seed's
    y = torch.as_tensor(list(labels), dtype=torch.long, device=device)
    guided = guidance != 1.0
    if guided:
        y = torch.cat([y, torch.full_like(y, unet.config.num_class_embeds - 1)])
    scheduler.set_timesteps(steps)
    if known is not None:
        x0 = to_model(known).to(device)
        m = mask.float()[:, None].to(device)
        noise = initial_noise([s + 1 for s in seeds], (3, res, res)).to(device)
    x = x * scheduler.init_noise_sigma
    timesteps = scheduler.timesteps
    if start is not None:
        run = max(1, min(steps, round(steps * strength)))
        begin = len(timesteps) - run
        timesteps = timesteps[begin:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(begin)
        x = scheduler.add_noise(to_model(start).to(device), x, timesteps[:1])
    for t in timesteps:
        if known is not None:
            x = m * x + (1 - m) * scheduler.add_noise(x0, noise, t.reshape(1))
        inp = scheduler.scale_model_input(torch.cat([x, x]) if guided else x, t)
        with runtime.autocast():
            out = unet(inp, t, class_labels=y).sample.float()
        if guided:
            cond, uncond = out[:n], out[n:]
            out = uncond + guidance * (cond - uncond)
        x = scheduler.step(out, t, x).prev_sample
    if known is not None:
        x = m * x + (1 - m) * x0
    return to_uint8(x).cpu()

"""The classifier: a small plain-torch CNN (or a timm backbone, rebalance/learn/backbones.py), its
training loop and prediction, on any device.

Data arrive as a torch Dataset of uint8 images (rebalance/learn/data.py streams them from files);
random draws (batch order, augmentation) happen on the CPU from the seed, tensors then move to
`runtime.device`, and matmuls run under `runtime`'s autocast (bf16 on a GPU by default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from rebalance.core import ranks
from rebalance.core.device import CPU, Runtime, to_device
from rebalance.core.progress import progress
from rebalance.learn import backbones, data
from rebalance.learn.backbones import SmallCNN


def to_input(batch_uint8: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
    """uint8 images as the model's input: [-1, 1] for the small CNN, the backbone's mean/std else;
    channels-last in memory (N x 3 x H x W with the channels innermost), as fit and predict_proba
    keep the weights: convolutions run faster so on CPUs and GPUs alike, and every path (in memory,
    streamed, many processes) gives the same layout, so the same float results."""
    if model is None or isinstance(model, SmallCNN):
        x = batch_uint8.float().div_(127.5).sub_(1.0)
    else:
        mean, std = (t.to(batch_uint8.device) for t in backbones.input_stats(model))
        x = (batch_uint8.float().div_(255.0) - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Online augmentation for the `real_aug` variant: flips, brightness/contrast, small shifts.
    The random draws are made on the CPU from `gen`; they are applied on `x`'s device."""
    n, on = x.shape[0], x.device
    flip = to_device(torch.rand(n, generator=gen) < 0.5, on)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    vflip = to_device(torch.rand(n, generator=gen) < 0.5, on)
    x = torch.where(vflip[:, None, None, None], x.flip(-2), x)
    gain = to_device(1 + 0.15 * (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1), on)
    bias = to_device(0.1 * (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1), on)
    x = x * gain + bias
    dy, dx = (int(v) for v in torch.randint(-4, 5, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (the W1 loss of the ISIC 2024 SD+LoRA study)."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp(min=1)
    w = counts.sum() / (n_classes * counts)
    return w / w.mean()


@torch.no_grad()
def predict_proba(
    model: nn.Module, images: Dataset | torch.Tensor, batch_size: int = 256, runtime: Runtime = CPU
) -> np.ndarray:
    """Class probabilities (N x C, float32 numpy) of a Dataset or tensor of uint8 images."""
    images = data.as_dataset(images)
    model.to(runtime.device, memory_format=torch.channels_last).eval()
    out = []
    for xb in data.loader(images, data.sequential(len(images), batch_size), runtime):
        with runtime.autocast():
            logits = model(to_input(xb.to(runtime.device, non_blocking=True), model))
        out.append(torch.softmax(logits.float(), 1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    weighted: bool = False,
    augmented: bool = False,
    eval_every: int | None = None,
    on_eval: Callable[[int, float, float, nn.Module], None] | None = None,
    runtime: Runtime = CPU,
    world: ranks.World = ranks.ALONE,
) -> nn.Module:
    """Train for a fixed number of optimizer steps (equal compute whatever the data size), with
    AdamW and a one-cycle schedule.

    Every `eval_every` optimizer steps and after the last one, call `on_eval(step, epoch, mean
    loss since the previous call, model)` (`epoch`: passes over the data so far, fractional).
    The call points depend only on `steps` and `eval_every`, never on the data size, so models
    trained on data sets of different sizes get the same checkpoint choices.

    Among processes launched by accelerate (`world`), training is data-parallel: each process
    takes its part of every batch (`batch_size` stays the global batch), DDP averages the
    gradients, and `on_eval` runs in the first process only."""
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    x = data.as_dataset(x)
    device = runtime.device
    gen = torch.Generator().manual_seed(seed)
    n_classes = model.num_classes
    model.to(device, memory_format=torch.channels_last)
    net = world.data_parallel(model, device)
    weight = class_weights(y, n_classes).to(device) if weighted else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    scaler = torch.amp.GradScaler(device.type, enabled=runtime.dtype == torch.float16)
    batch_size = min(batch_size, len(x))
    batches = data.batch_order(len(x), steps, batch_size, gen)  # drawn up front: loaders prefetch
    batches = [world.slice(b) for b in batches]  # this process's part (all of it when alone)
    running = []  # this process's losses since the last evaluation (kept only where on_eval reads them)
    logs = on_eval is not None and world.main
    steps_done = progress(data.loader(x, batches, runtime), "fit", total=steps, unit="step")
    for step, xb in enumerate(steps_done, start=1):
        net.train()
        # uint8 crosses to the device (a quarter of float32's bytes) and is converted there
        xb = to_input(xb.to(device, non_blocking=True), model)
        if augmented:
            xb = augment(xb, gen).contiguous(memory_format=torch.channels_last)  # draws from the seed
        yb = to_device(y[batches[step - 1]], device)
        with runtime.autocast():
            logits = net(xb)
        loss = loss_fn(logits.float(), yb)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        if logs:
            running.append(loss.detach())  # read at the next evaluation: no wait for the GPU per step
        if logs and ((eval_every and step % eval_every == 0) or step == steps):
            mean_loss = sum(v.item() for v in running) / len(running)
            on_eval(step, step * batch_size / len(x), mean_loss, model)
            running = []
    return model


def save(
    model: nn.Module, path: Path, classes: list[str], image_size: int, width: int, backbone: str = "small_cnn"
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "classes": classes,
            "image_size": image_size,
            "width": width,
            "backbone": backbone,
        },
        tmp,
    )
    tmp.replace(path)


def load(path: Path) -> tuple[nn.Module, dict]:
    """A saved classifier (its backbone rebuilt without pretrained weights, then its own loaded)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = backbones.build(ckpt.get("backbone", backbones.SMALL_CNN), len(ckpt["classes"]), ckpt["width"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def split_rows(manifest_df: pd.DataFrame, split: str, origins: list[str] | None = None) -> pd.DataFrame:
    rows = manifest_df[manifest_df.split == split]
    if origins is not None:
        rows = rows[rows.origin.isin(origins)]
    return rows.sort_values("path").reset_index(drop=True)

"""A class-conditional DCGAN for small images (the PneumoniaMNIST DCGAN study's family), with a
spectral-norm projection discriminator and the hinge loss, which train stably on a few hundred images.

Generator: [z, class embedding] -> 4x4 -> (upsample, conv, batch norm, ReLU) x log2(res/4) ->
tanh RGB. Discriminator: spectral-norm strided convs down to 4x4, sum pooling, a linear score plus
the projection <embed(y), h> (Miyato & Koyama 2018). Adam (0, 0.9) for both; the generator's
weights are averaged (diffusers' `EMAModel`, as the diffusion UNet's) and the average is what is
saved. Batches, latents and flips are drawn on the CPU from the seed; sampling draws each image's
latent from its own seed, in eval mode (batch norm on running statistics), so an image never
depends on its batch.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from torch import nn
from torch.nn.utils import spectral_norm
from torch.utils.data import Dataset

from rebalance.core import ranks
from rebalance.core.atomic import write_text
from rebalance.core.device import CPU, Runtime
from rebalance.core.hashing import sha256_file
from rebalance.core.progress import progress
from rebalance.learn import data

WEIGHTS = "generator.pt"
CONFIG = "config.json"


def _levels(resolution: int) -> int:
    levels = int(math.log2(resolution // 4))
    if resolution < 8 or 4 * 2**levels != resolution:
        raise ValueError(f"GAN resolution must be a power of two >= 8, got {resolution}")
    return levels


class Generator(nn.Module):
    def __init__(self, resolution: int, n_classes: int, z_dim: int = 64, channels: int = 64):
        super().__init__()
        self.config = {"resolution": resolution, "n_classes": n_classes, "z_dim": z_dim, "channels": channels}
        levels = _levels(resolution)
        widths = [channels * 2 ** min(levels - i, 3) for i in range(levels + 1)]
        self.width = widths[0]
        self.embed = nn.Embedding(n_classes, z_dim)
        self.project = nn.Linear(2 * z_dim, widths[0] * 16)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
            layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(y)], 1)).view(len(z), self.width, 4, 4)
        return self.body(h)


class Discriminator(nn.Module):
    def __init__(self, resolution: int, n_classes: int, channels: int = 64):
        super().__init__()
        levels = _levels(resolution)
        widths = [channels * 2 ** min(i, 3) for i in range(levels + 1)]
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, widths[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, widths[-1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x).sum((2, 3))
        return self.score(h).squeeze(1) + (self.embed(y) * h).sum(1)


def train(
    generator: Generator,
    images: Dataset,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    channels: int,
    ema_decay: float = 0.999,
    hflip: bool = True,
    runtime: Runtime = CPU,
    world: ranks.World = ranks.ALONE,
) -> tuple[Generator, dict]:
    """Train against a fresh discriminator; return (the EMA generator, a summary). `images`: a
    Dataset of 3 x H x W uint8 at the generator's resolution (streamed or in memory).

    The EMA is diffusers' `EMAModel` over the generator's weights: after optimizer step t its
    decay is min(ema_decay, (1 + t) / (10 + t)) (EMAModel's default warmup; the first step copies
    the weights). The returned generator is a copy holding the averaged weights and the trained
    generator's BatchNorm statistics; `generator` itself keeps the last weights.

    Among processes launched by accelerate (`world`): data-parallel. Every process draws the
    global batch's random numbers (indices, flips, latents) from the seed and takes its part
    (`world.slice`); the gradients of both networks are averaged over the processes
    (`world.average_gradients`; DDP does not suit a discriminator called twice per step), so the
    weights stay the same in every process; the generator's BatchNorm statistics are averaged at
    the end. The losses in the summary are those of this process's part."""
    cfg = generator.config
    device = runtime.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    disc = Discriminator(cfg["resolution"], cfg["n_classes"], channels).to(device)
    generator.to(device).train()
    # foreach: one kernel per update on a GPU instead of a Python loop over every parameter (the
    # CPU keeps the loop)
    ema = EMAModel(generator.parameters(), decay=ema_decay, foreach=device.type == "cuda")
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.0, 0.9))
    batches = [torch.randint(0, len(images), (batch_size,), generator=gen).tolist() for _ in range(steps)]
    part = world.slice(list(range(batch_size)))  # this process's positions in every batch
    batches = [[b[i] for i in part] for b in batches]
    start, d_loss, g_loss = time.perf_counter(), 0.0, 0.0
    stream = data.loader(images, batches, runtime)
    for step, xb in enumerate(progress(stream, "train_gan", total=steps, unit="step")):
        real = xb.float().div(127.5).sub(1.0)
        if hflip:
            flip = (torch.rand(batch_size, generator=gen) < 0.5)[part]
            real = torch.where(flip[:, None, None, None], real.flip(-1), real)
        y = labels[batches[step]]
        z = torch.randn(batch_size, cfg["z_dim"], generator=gen)[part]
        real, y, z = real.to(device), y.to(device), z.to(device)
        with runtime.autocast():
            fake = generator(z, y)
            loss_d = torch.relu(1 - disc(real, y)).mean() + torch.relu(1 + disc(fake.detach(), y)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.float().backward()
        world.average_gradients(disc.parameters())
        opt_d.step()
        with runtime.autocast():
            loss_g = -disc(fake, y).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.float().backward()
        world.average_gradients(generator.parameters())
        opt_g.step()
        ema.step(generator.parameters())
        d_loss, g_loss = 0.98 * d_loss + 0.02 * loss_d.item(), 0.98 * g_loss + 0.02 * loss_g.item()
    average = copy.deepcopy(generator).eval()  # the trained generator's BatchNorm statistics
    ema.copy_to(average.parameters())
    world.average_buffers(average)  # BatchNorm statistics: each process saw its part of the batches
    seconds = time.perf_counter() - start
    summary = {
        "steps": steps,
        "d_loss": round(d_loss, 4),
        "g_loss": round(g_loss, 4),
        "seconds": round(seconds, 1),
        "images_per_second": round(steps * batch_size / max(seconds, 1e-9), 1),
    }
    return average.cpu().eval(), summary


def save(generator: Generator, folder: Path) -> str:
    """Save weights and config; return the checkpoint hash (of the weights file)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in generator.state_dict().items()}, folder / WEIGHTS)
    write_text(folder / CONFIG, json.dumps(generator.config, indent=2, sort_keys=True) + "\n")
    return checkpoint_hash(folder)


def load(folder: Path) -> Generator:
    config = json.loads((Path(folder) / CONFIG).read_text())
    generator = Generator(**config)
    generator.load_state_dict(torch.load(Path(folder) / WEIGHTS, map_location="cpu", weights_only=True))
    return generator.eval()


def checkpoint_hash(folder: Path) -> str:
    return sha256_file(Path(folder) / WEIGHTS)[:16]


@torch.inference_mode()
def sample(generator: Generator, labels: Sequence[int], seeds: Sequence[int], runtime: Runtime = CPU):
    """N x H x W x 3 uint8 images; each latent from its own seed, drawn on the CPU."""
    z = torch.stack(
        [
            torch.randn(generator.config["z_dim"], generator=torch.Generator().manual_seed(int(s)))
            for s in seeds
        ]
    )
    generator.to(runtime.device).eval()
    y = torch.as_tensor(list(labels), dtype=torch.long, device=runtime.device)
    with runtime.autocast():
        x = generator(z.to(runtime.device), y).float()
    return x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()

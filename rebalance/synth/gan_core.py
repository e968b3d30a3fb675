"""A class-conditional DCGAN for small images (the PneumoniaMNIST DCGAN study's family), with a
spectral-norm projection discriminator and the hinge loss, which train stably on a few hundred images.

Generator: [z, class embedding] -> 4x4 -> (upsample, conv, batch norm, ReLU) x log2(res/4) ->
tanh RGB. Discriminator: spectral-norm strided convs down to 4x4, sum pooling, a linear score plus
the projection <embed(y), h> (Miyato & Koyama 2018). Adam (0, 0.9) for both; the generator's
weights are averaged (diffusers' `EMAModel`, as the diffusion UNet's) and the average is what is
saved. Batches, latents and flips are drawn on the CPU from the seed; sampling draws each image's
latent from its own seed, in eval mode (batch norm on running statistics), so an image never
depends on its batch.

Progressive growing (`base_resolution`, the GAN/PGGAN/diffusion comparison study; Karras et al.
2018): the same two networks train at base_resolution first, then at each doubling up to the
generator's resolution, the steps split evenly across the phases (`schedule`). A phase's new blocks
are faded in over the first half of the phase: the generator's output is alpha * toRGB(new block)
+ (1 - alpha) * the upsampled toRGB of the previous resolution, the discriminator mirrors it with
fromRGB at the new and (average-pooled) previous resolution, and the real images are blended the
same way. The lower resolutions' toRGB/fromRGB layers serve only in training; the final phase uses
the generator's own output layer, so what is saved is a plain `Generator`.
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
from torch.nn import functional as F
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


def _level(size: int) -> int:
    """The level of a power-of-two side >= 4: 0 for the 4 x 4 start, one more per doubling."""
    return (size // 4).bit_length() - 1


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


def phases(resolution: int, base_resolution: int) -> list[int]:
    """The resolutions of progressive growing, base_resolution doubling up to resolution."""
    levels = _levels(resolution)
    ok = base_resolution >= 4 and base_resolution <= resolution and resolution % base_resolution == 0
    if not ok or (resolution // base_resolution) & (resolution // base_resolution - 1):
        raise ValueError(
            f"GAN base_resolution must be a power of two >= 4 dividing resolution ({resolution}) by a "
            f"power of two, got {base_resolution}"
        )
    return [4 * 2**k for k in range(levels + 1) if 4 * 2**k >= base_resolution]


def schedule(steps: int, resolution: int, base_resolution: int) -> list[tuple[int, float]]:
    """(resolution, alpha) of every step of progressive growing. Phase p of n has the steps
    steps * p // n to steps * (p + 1) // n - 1; in every phase but the first, alpha goes from 0 at
    its first step to 1 at the half of its length t / (length / 2), then stays 1."""
    sizes = phases(resolution, base_resolution)
    n = len(sizes)
    if steps < 2 * n:
        raise ValueError(f"progressive GAN: {steps} steps for {n} phases; give at least 2 per phase")
    plan = []
    for p, size in enumerate(sizes):
        length = steps * (p + 1) // n - steps * p // n
        plan += [(size, 1.0 if p == 0 else min(1.0, t / (length / 2))) for t in range(length)]
    return plan


class GrowingGenerator(nn.Module):
    """A `Generator` seen at a lower resolution (`level`, `alpha`), with a toRGB layer for each
    resolution below its own (training only; its own output layer is the last one's)."""

    def __init__(self, generator: Generator, base_resolution: int):
        super().__init__()
        self.generator = generator
        self.levels = _levels(generator.config["resolution"])
        self.first = _level(base_resolution)
        convs = [m for m in generator.body if isinstance(m, nn.Conv2d)]
        widths = [generator.width] + [c.out_channels for c in convs[:-1]]
        self.to_rgb = nn.ModuleList(
            nn.Conv2d(widths[k], 3, 3, padding=1) for k in range(self.first, self.levels)
        )
        self.level, self.alpha = self.levels, 1.0

    def rgb(self, level: int, h: torch.Tensor) -> torch.Tensor:
        conv = self.generator.body[-2] if level == self.levels else self.to_rgb[level - self.first]
        return torch.tanh(conv(h))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g, k = self.generator, self.level
        h = g.project(torch.cat([z, g.embed(y)], 1)).view(len(z), g.width, 4, 4)
        if k == self.first or self.alpha >= 1:
            return self.rgb(k, g.body[: 2 + 4 * k](h))
        prev = g.body[: 2 + 4 * (k - 1)](h)
        new = self.rgb(k, g.body[2 + 4 * (k - 1) : 2 + 4 * k](prev))
        old = F.interpolate(self.rgb(k - 1, prev), scale_factor=2, mode="nearest")
        return self.alpha * new + (1 - self.alpha) * old


class GrowingDiscriminator(nn.Module):
    """A `Discriminator` fed a lower resolution (`level`, `alpha`): a fromRGB layer for each
    resolution below the full one enters at the block of that resolution."""

    def __init__(self, disc: Discriminator, resolution: int, base_resolution: int):
        super().__init__()
        self.disc = disc
        self.levels = _levels(resolution)
        self.first = _level(base_resolution)
        # block j (body[2 + 2j], body[3 + 2j]) halves resolution / 2**j
        widths = [disc.body[2 + 2 * j].in_channels for j in range(self.levels)] + [disc.score.in_features]
        self.from_rgb = nn.ModuleList(
            spectral_norm(nn.Conv2d(3, widths[self.levels - k], 3, padding=1))
            for k in range(self.first, self.levels)
        )
        self.level, self.alpha = self.levels, 1.0

    def features(self, level: int, x: torch.Tensor) -> torch.Tensor:
        conv = self.disc.body[0] if level == self.levels else self.from_rgb[level - self.first]
        return F.leaky_relu(conv(x), 0.2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d, k = self.disc, self.level
        j = 2 + 2 * (self.levels - k)  # the first block at this resolution
        h = self.features(k, x)
        if k > self.first and self.alpha < 1:
            old = self.features(k - 1, F.avg_pool2d(x, 2))
            h = d.body[j + 2 :](self.alpha * d.body[j : j + 2](h) + (1 - self.alpha) * old)
        else:
            h = d.body[j:](h)
        h = h.sum((2, 3))
        return d.score(h).squeeze(1) + (d.embed(y) * h).sum(1)


def real_at(real: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Real images (N x 3 x H x W in [-1, 1]) average-pooled to `resolution`; while a phase fades
    in (alpha < 1), blended with their upsampled half-resolution version as the generator is."""
    x = F.avg_pool2d(real, real.shape[-1] // resolution) if real.shape[-1] > resolution else real
    if alpha < 1:
        x = alpha * x + (1 - alpha) * F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    return x


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
    base_resolution: int | None = None,
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
    the end. The losses in the summary are those of this process's part.

    base_resolution (None: not progressive): grow progressively from it (`schedule`); the extra
    toRGB/fromRGB layers are made after the discriminator, from the same seed, and dropped at the
    end. The summary then lists the phases."""
    cfg = generator.config
    device = runtime.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    disc = Discriminator(cfg["resolution"], cfg["n_classes"], channels).to(device)
    plan = None if base_resolution is None else schedule(steps, cfg["resolution"], base_resolution)
    g_net: nn.Module = generator  # what is trained: the networks themselves, or their growing views
    d_net: nn.Module = disc
    if plan is not None:
        g_net = GrowingGenerator(generator, base_resolution).to(device)
        d_net = GrowingDiscriminator(disc, cfg["resolution"], base_resolution).to(device)
    generator.to(device).train()
    # foreach: one kernel per update on a GPU instead of a Python loop over every parameter (the
    # CPU keeps the loop)
    ema = EMAModel(generator.parameters(), decay=ema_decay, foreach=device.type == "cuda")
    opt_g = torch.optim.Adam(g_net.parameters(), lr=lr, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d_net.parameters(), lr=lr, betas=(0.0, 0.9))
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
        if plan is not None:
            size, alpha = plan[step]
            real = real_at(real, size, alpha)
            g_net.level = d_net.level = _level(size)
            g_net.alpha = d_net.alpha = alpha
        with runtime.autocast():
            fake = g_net(z, y)
            loss_d = torch.relu(1 - d_net(real, y)).mean() + torch.relu(1 + d_net(fake.detach(), y)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.float().backward()
        world.average_gradients(d_net.parameters())
        opt_d.step()
        with runtime.autocast():
            loss_g = -d_net(fake, y).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.float().backward()
        world.average_gradients(g_net.parameters())
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
    if plan is not None:
        sizes = [size for size, _ in plan]
        summary["phases"] = [
            {"resolution": r, "steps": sizes.count(r)} for r in phases(cfg["resolution"], base_resolution)
        ]
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

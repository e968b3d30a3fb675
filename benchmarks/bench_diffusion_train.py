"""Diffusion training throughput: our loop (diffusion_core.train) against a bare diffusers loop.

Both train the same class-conditional UNet (core.build_unet at --resolution, --channels,
--layers-per-block; fresh weights from the same seed) for the same steps and batch size on the
same in-memory random uint8 images, under the same autocast on --device:

- project: `core.train(unet, images, labels, ...)` as stage train_generator@diffusion runs it: every random
  draw (batch, flips, class dropout, noise, timesteps) made on the CPU from the seed and moved to
  the device, v-prediction MSE, AdamW + warmup/cosine LR, gradient clipping, EMA.
- bare: the plain diffusers recipe: the batch moved to the device, noise and timesteps drawn on
  the device, the same loss, optimizer, clipping and EMA (EMAModel, foreach on a GPU), no flips,
  no class dropout, no LR schedule.

The first round warms up and is not timed; then the two alternate and the median of --repeats
runs is kept. Prints project/bare and writes the result as JSON.

    python benchmarks/bench_diffusion_train.py [--steps 50] [--batch 32] [--resolution 32]
    python benchmarks/bench_diffusion_train.py --device cuda --resolution 64 --channels 64 128 256 \
        --layers-per-block 2 --batch 64 --steps 200      # the GPU profile's model
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _project import write_result
from diffusers.training_utils import EMAModel

from rebalance.core import device as device_mod
from rebalance.core.device import Runtime
from rebalance.synth import diffusion_core as core

RESULTS = Path(__file__).resolve().parent / "results"
LR, SEED, CLASSES = 2e-4, 0, 4


def project(
    unet, images: torch.Tensor, labels: torch.Tensor, steps: int, batch: int, runtime: Runtime
) -> None:
    core.train(unet, images, labels, steps=steps, batch_size=batch, lr=LR, seed=SEED, runtime=runtime)


def bare(unet, images: torch.Tensor, labels: torch.Tensor, steps: int, batch: int, runtime: Runtime) -> None:
    device, sched = runtime.device, core.noise_scheduler()
    unet.to(device).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=LR, weight_decay=0.0)
    ema = EMAModel(
        unet.parameters(), decay=0.999, use_ema_warmup=True, power=3 / 4, foreach=device.type == "cuda"
    )
    order = torch.randint(0, len(images), (steps, batch), generator=torch.Generator().manual_seed(SEED))
    for idx in order:
        x0 = images[idx].to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        y = labels[idx].to(device)
        noise = torch.randn_like(x0)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), device=device)
        with runtime.autocast():
            pred = unet(sched.add_noise(x0, noise, t), t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(pred.float(), sched.get_velocity(x0, noise, t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.step(unet.parameters())
    loss.item()


def run(a: argparse.Namespace) -> dict:
    dev = device_mod.select(a.device)
    runtime = Runtime(dev, device_mod.autocast_dtype(dev, a.precision))
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (a.n, a.resolution, a.resolution, 3), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, CLASSES, (a.n,), generator=gen)
    arch = {"channels": tuple(a.channels), "layers_per_block": a.layers_per_block}
    loops = {"project": project, "bare": bare}
    timings: dict[str, list[float]] = {name: [] for name in loops}
    for rep in range(a.repeats + 1):  # the first round warms up and is not timed
        for name in loops if rep % 2 == 0 else reversed(loops):
            torch.manual_seed(SEED)
            unet = core.build_unet(a.resolution, CLASSES, **arch)
            steps = a.warmup if rep == 0 else a.steps
            start = time.perf_counter()
            loops[name](unet, images, labels, steps, a.batch, runtime)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if rep:
                timings[name].append(time.perf_counter() - start)
    rate = {name: a.steps * a.batch / statistics.median(t) for name, t in timings.items()}
    return {
        "resolution": a.resolution,
        "channels": list(a.channels),
        "layers_per_block": a.layers_per_block,
        "parameters": sum(p.numel() for p in core.build_unet(a.resolution, CLASSES, **arch).parameters()),
        "steps": a.steps,
        "batch": a.batch,
        **runtime.describe(),
        "seconds": {name: [round(s, 3) for s in t] for name, t in timings.items()},
        "project_images_per_second": round(rate["project"], 1),
        "bare_images_per_second": round(rate["bare"], 1),
        "ratio": round(rate["project"] / rate["bare"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="images in memory")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64, 64])
    ap.add_argument("--layers-per-block", type=int, default=1)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=5, help="steps of each loop in the untimed first round")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="compute.device: cpu, cuda, auto, ...")
    ap.add_argument("--precision", default="auto", help="compute.precision: auto (bf16 on a GPU), fp32")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_diffusion_train.json")
    a = ap.parse_args()
    device_mod.set_threads(a.threads)
    r = run(a)
    sec, unet = r["seconds"], f"UNet {r['channels']} x{r['layers_per_block']} at {r['resolution']} px"
    print(f"{unet} ({r['parameters']:,} parameters), {r['steps']} steps x {r['batch']} images")
    print(f"{r['device_name']} ({r['autocast'] or 'float32'}), {r['threads']} threads")
    print(
        f"project (diffusion_core.train): {r['project_images_per_second']:.1f} images/s  {sec['project']} s"
    )
    print(f"bare diffusers loop:            {r['bare_images_per_second']:.1f} images/s  {sec['bare']} s")
    print(f"ratio project/bare: {r['ratio']:.3f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(a.out, r)


if __name__ == "__main__":
    main()

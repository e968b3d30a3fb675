"""Sampling benchmark: our class-conditional sampler against a bare diffusers loop, same model.

Reports images/s and UNet evaluations per image for both, and their ratio (target: >= 0.9x), in one
run so machine load affects both alike (the two are interleaved, and the median is kept).

    python benchmarks/bench_sampling.py [--model models/generators/diffusion] [--n 64] [--steps 25]
        [--repeats 3] [--device cpu] [--precision auto] [--resolution 32] [--channels 32 64 64]
        [--layers-per-block 1] [--batch 32] [--out FILE]
    pytest benchmarks/bench_sampling.py       # the same, as a check of the 0.9x target

Without --model (or when the folder lacks weights) a freshly initialised UNet is used, of the
default generators.diffusion architecture or the one --resolution/--channels/--layers-per-block give
(the GPU profile's: --resolution 64 --channels 64 128 256 --layers-per-block 2): speed does not
depend on the weights. Both loops run on --device under the same autocast (--precision auto: bf16
on a GPU, float32 on the CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _project import write_result
from diffusers import DDIMScheduler

from rebalance.core import device as device_mod
from rebalance.core.device import CPU, Runtime
from rebalance.synth import diffusion_core as core


def bare_loop(unet, config, labels: torch.Tensor, steps: int, seed: int, runtime: Runtime) -> torch.Tensor:
    """The plain diffusers recipe: set_timesteps, then unet + scheduler.step per timestep."""
    scheduler = DDIMScheduler.from_config(config, timestep_spacing="trailing", clip_sample=False)
    scheduler.set_timesteps(steps)
    res = unet.config.sample_size
    x = torch.randn((len(labels), 3, res, res), generator=torch.Generator().manual_seed(seed))
    x, labels = x.to(runtime.device) * scheduler.init_noise_sigma, labels.to(runtime.device)
    with torch.no_grad():
        for t in scheduler.timesteps:
            with runtime.autocast():
                out = unet(scheduler.scale_model_input(x, t), t, class_labels=labels).sample
            x = scheduler.step(out.float(), t, x).prev_sample
    return x.cpu()


def ours(unet, config, labels: torch.Tensor, steps: int, seed: int, runtime: Runtime) -> torch.Tensor:
    seeds = [seed + i for i in range(len(labels))]
    return core.sample(
        unet, core.sampler(config, "ddim"), labels.tolist(), seeds, steps=steps, runtime=runtime
    )


def run(
    model: str | None,
    n: int,
    steps: int,
    repeats: int,
    batch: int = 32,
    runtime: Runtime = CPU,
    resolution: int = 32,
    channels: tuple[int, ...] | None = None,
    layers_per_block: int = 1,
) -> dict:
    if model and (Path(model) / core.WEIGHTS).exists():
        unet, config = core.load(Path(model))
    else:
        torch.manual_seed(0)
        arch = {"channels": tuple(channels)} if channels else {}
        arch["layers_per_block"] = layers_per_block
        unet, config = core.build_unet(resolution, 4, **arch).eval(), dict(core.noise_scheduler().config)
    unet.to(runtime.device)
    n_classes = unet.config.num_class_embeds - 1
    calls: list[int] = []
    unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    timings: dict[str, list[float]] = {"ours": [], "bare": []}
    evals: dict[str, float] = {}
    for rep in range(repeats + 1):  # the first round warms up and is not timed
        for name, fn in (
            (("bare", bare_loop), ("ours", ours)) if rep % 2 else (("ours", ours), ("bare", bare_loop))
        ):
            calls.clear()
            start = time.perf_counter()
            for i in range(0, n, batch):
                labels = torch.arange(i, min(n, i + batch)) % n_classes
                fn(unet, config, labels, steps, seed=i, runtime=runtime)
            seconds = time.perf_counter() - start
            if rep:
                timings[name].append(seconds)
            evals[name] = sum(calls) / n
    result = {
        name: {"images_per_second": round(n / statistics.median(t), 2), "unet_evals_per_image": evals[name]}
        for name, t in timings.items()
    }
    result["ratio"] = round(result["ours"]["images_per_second"] / result["bare"]["images_per_second"], 3)
    result.update(
        {"n": n, "steps": steps, "batch": batch, "resolution": unet.config.sample_size, **runtime.describe()}
    )
    return result


def test_sampler_keeps_up_with_bare_diffusers_loop():
    result = run(None, n=32, steps=10, repeats=3)
    print(json.dumps(result))
    assert result["ours"]["unet_evals_per_image"] == result["bare"]["unet_evals_per_image"] == 10
    assert result["ratio"] >= 0.9, result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/generators/diffusion")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="images per sampling call")
    parser.add_argument("--device", default="cpu", help="compute.device: cpu, cuda, auto, ...")
    parser.add_argument("--precision", default="auto", help="compute.precision: auto (bf16 on a GPU), fp32")
    parser.add_argument("--resolution", type=int, default=32, help="fresh UNet's sample size (no --model)")
    parser.add_argument("--channels", type=int, nargs="+", default=None, help="fresh UNet's block widths")
    parser.add_argument("--layers-per-block", type=int, default=1, help="fresh UNet's resnets per block")
    parser.add_argument("--out", type=Path, default=None, help="also write the result here (JSON)")
    args = parser.parse_args()
    dev = device_mod.select(args.device)
    rt = Runtime(dev, device_mod.autocast_dtype(dev, args.precision))
    arch = (args.resolution, args.channels, args.layers_per_block)
    result = run(args.model, args.n, args.steps, args.repeats, args.batch, rt, *arch)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_result(args.out, result)

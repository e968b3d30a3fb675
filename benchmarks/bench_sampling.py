"""Sampling benchmark: our class-conditional sampler against a bare diffusers loop, same model.

Reports images/s and UNet evaluations per image for both, and their ratio (bar: >= 0.9x), in one
run so machine load affects both alike (the two are interleaved, and the median is kept).

    python benchmarks/bench_sampling.py [--model models/diffusion] [--n 64] [--steps 25] [--repeats 3]
    pytest benchmarks/bench_sampling.py       # the same, as a check of the 0.9x bar

Without --model (or when the folder lacks weights) a freshly initialised UNet of the default
diffusion_train architecture is used: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from diffusers import DDIMScheduler

from stages.synth import diffusion_core as core


def bare_loop(unet, config, labels: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """The plain diffusers recipe: set_timesteps, then unet + scheduler.step per timestep."""
    scheduler = DDIMScheduler.from_config(config, timestep_spacing="trailing", clip_sample=False)
    scheduler.set_timesteps(steps)
    res = unet.config.sample_size
    x = torch.randn((len(labels), 3, res, res), generator=torch.Generator().manual_seed(seed))
    x = x * scheduler.init_noise_sigma
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(scheduler.scale_model_input(x, t), t, class_labels=labels).sample
            x = scheduler.step(out, t, x).prev_sample
    return x


def ours(unet, config, labels: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    seeds = [seed + i for i in range(len(labels))]
    return core.sample(unet, core.sampler(config, "ddim"), labels.tolist(), seeds, steps=steps)


def run(model: str | None, n: int, steps: int, repeats: int, batch: int = 32) -> dict:
    if model and (Path(model) / core.WEIGHTS).exists():
        unet, config = core.load(Path(model))
    else:
        torch.manual_seed(0)
        unet, config = core.build_unet(32, 4).eval(), dict(core.noise_scheduler().config)
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
                fn(unet, config, labels, steps, seed=i)
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
        {"n": n, "steps": steps, "resolution": unet.config.sample_size, "threads": torch.get_num_threads()}
    )
    return result


def test_sampler_keeps_up_with_bare_diffusers_loop():
    result = run(None, n=32, steps=10, repeats=3)
    print(json.dumps(result))
    assert result["ours"]["unet_evals_per_image"] == result["bare"]["unet_evals_per_image"] == 10
    assert result["ratio"] >= 0.9, result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/diffusion")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.model, args.n, args.steps, args.repeats), indent=2))

"""Stage train_generator@diffusion: train the class-conditional diffusion UNet of method
`diffusion` on train-split real images.

Its own stage (and output, models/generators/diffusion) so that changing how many images are
sampled never retrains. Reads data/counted/manifest.csv (real images with their split; files in
data/raw) and params `generators.diffusion`; writes the model with `save_pretrained`, its model
card (README.md) and sample sheet (samples.png, rebalance/synth/model_card.py), and
metrics/diffusion_train.json (loss, time, throughput, checkpoint hash).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from diffusers import UNet2DModel

from rebalance import config
from rebalance.core import atomic, device, manifest, paths, ranks
from rebalance.core.device import Runtime
from rebalance.core.errors import RebalanceError, run_main
from rebalance.learn.data import image_set
from rebalance.synth import diffusion_core as core, model_card, provenance


def main() -> None:
    params = config.load()
    cfg = params.generators.diffusion
    if cfg is None:
        raise RebalanceError(
            "train_diffusion: generators.diffusion is not in params.yaml; add `diffusion: {}`"
        )
    if cfg.processes > 1 and not ranks.launched():  # dvc repro: launch the data-parallel processes
        sys.exit(ranks.relaunch("stages.train_diffusion", cfg.processes))
    runtime = device.runtime(params.compute)
    world = ranks.World.current(cpu=runtime.device.type == "cpu")
    classes = params.dataset.classes
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    train = real[real.split == "train"].sort_values("path")
    if train.empty:
        raise RebalanceError(
            "train_diffusion: no train-split real images in data/counted; run `dvc repro count`"
        )
    # decoded once if small, else streamed batch by batch (compute.in_memory_mb)
    images = image_set(
        paths.RAW, list(train.path), cfg.resolution, params.dataset.fit, params.compute.in_memory_mb
    )
    labels = torch.tensor([classes.index(c) for c in train.label])
    torch.manual_seed(cfg.seed)  # the initial weights, too, come from the seed
    unet = core.build_unet(cfg.resolution, len(classes), cfg.channels, cfg.layers_per_block, cfg.attention)
    cpu0 = time.process_time()
    summary = core.train(
        unet,
        images,
        labels,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        ema_decay=cfg.ema_decay,
        class_dropout=cfg.class_dropout,
        hflip=cfg.hflip,
        runtime=runtime,
        world=world,
        log=lambda step, loss: print(f"train_diffusion: step {step}/{cfg.steps} loss {loss:.4f}", flush=True),
    )
    if not world.main:  # every process holds the same weights; the first one saves them
        return
    with atomic.output_dir(paths.DIFFUSION_MODEL) as out:
        ckpt = core.save(unet, out)
        provenance.write_record(out, train)  # which images it saw: synthesize checks it
        report = {
            **summary,
            "cpu_seconds": round(time.process_time() - cpu0, 1),
            **runtime.describe(),
            "processes": world.size,
            "train_images": len(train),
            "parameters": sum(p.numel() for p in unet.parameters()),
            "resolution": cfg.resolution,
            "checkpoint": ckpt,
        }
        start = time.perf_counter()
        sheet = sample_sheet(out, unet, classes, cfg.seed, runtime)
        print(f"train_diffusion: sample sheet in {time.perf_counter() - start:.1f} s", flush=True)
        model_card.write(
            out, key="diffusion", dataset=params.dataset.name,
            classes={c: int((train.label == c).sum()) for c in classes},
            params=cfg.model_dump(mode="json"), metrics=report, parameters=report["parameters"],
            architecture=[
                f"diffusers `UNet2DModel`, {cfg.resolution} x {cfg.resolution} RGB, class-conditional "
                f"({len(classes)} classes + a no-class token for classifier-free guidance)",
                f"Channels {cfg.channels}, {cfg.layers_per_block} layer(s) per block, self-attention "
                f"{'at the lowest resolution' if cfg.attention else 'off'}",
                "v-prediction on the cosine (`squaredcos_cap_v2`) schedule of 1,000 steps (`scheduler/`); "
                "the saved weights are the EMA of the trained ones",
            ],
            sheet=sheet,
        )  # fmt: skip
    atomic.write_json(paths.DIFFUSION_TRAIN, report)
    print(
        f"train_diffusion: {summary['steps']} steps in {summary['seconds']} s, loss {summary['loss']}, "
        f"checkpoint {ckpt}"
    )


def sample_sheet(
    out: Path, unet: UNet2DModel, classes: list[str], seed: int, runtime: Runtime
) -> model_card.Sheet:
    """The model card's samples.png: DDIM with a short fixed schedule, no guidance."""
    per_class, steps = model_card.PER_CLASS, model_card.SHEET_STEPS
    seeds = [s for row in model_card.sheet_seeds(seed, len(classes), per_class) for s in row]
    labels = [c for c in range(len(classes)) for _ in range(per_class)]
    scheduler = core.sampler(core.noise_scheduler().config, "ddim")
    images = core.sample(unet, scheduler, labels, seeds, steps=steps, runtime=runtime).numpy()
    rows = {c: images[i * per_class : (i + 1) * per_class] for i, c in enumerate(classes)}
    how = f"DDIM with {steps} steps, no guidance, {unet.config.sample_size} px"
    return model_card.draw_sheet(out, rows, how)


if __name__ == "__main__":
    run_main(main)

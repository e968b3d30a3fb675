"""Stage train_generator@diffusion: train the class-conditional diffusion UNet of method
`diffusion` on train-split real images.

Its own stage (and output, models/generators/diffusion) so that changing how many images are
sampled never retrains. Reads data/counted/manifest.csv (real images with their split; files in
data/raw) and params `generators.diffusion`; writes the model with `save_pretrained` and
metrics/diffusion_train.json (loss, time, throughput, checkpoint hash).
"""

from __future__ import annotations

import sys
import time

import torch

from rebalance import config
from rebalance.core import atomic, device, manifest, paths, ranks
from rebalance.core.errors import RebalanceError, run_main
from rebalance.learn.data import image_set
from rebalance.synth import diffusion_core as core, provenance


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
    atomic.write_json(
        paths.DIFFUSION_TRAIN,
        {
            **summary,
            "cpu_seconds": round(time.process_time() - cpu0, 1),
            **runtime.describe(),
            "processes": world.size,
            "train_images": len(train),
            "parameters": sum(p.numel() for p in unet.parameters()),
            "resolution": cfg.resolution,
            "checkpoint": ckpt,
        },
    )
    print(
        f"train_diffusion: {summary['steps']} steps in {summary['seconds']} s, loss {summary['loss']}, "
        f"checkpoint {ckpt}"
    )


if __name__ == "__main__":
    run_main(main)

"""Stage train_generator@gan: train the class-conditional GAN (rebalance/synth/gan_core.py) of
method `gan` on train-split real images.

Reads data/counted/manifest.csv (files in data/raw) and params `generators.gan`; writes
models/generators/gan (EMA generator weights, config, training_set.json) and
metrics/gan_train.json. The stage exists only while `generators` names gan.
"""

from __future__ import annotations

import sys
import time

import torch

from rebalance import config
from rebalance.core import atomic, device, manifest, paths, ranks
from rebalance.core.errors import RebalanceError, run_main
from rebalance.learn.data import image_set
from rebalance.synth import gan_core as core, provenance


def main() -> None:
    params = config.load()
    cfg = params.generators.gan
    if cfg is None:
        raise RebalanceError("train_gan: generators.gan is not in params.yaml; add `gan: {}`")
    if cfg.processes > 1 and not ranks.launched():  # dvc repro: launch the data-parallel processes
        sys.exit(ranks.relaunch("stages.train_gan", cfg.processes))
    runtime = device.runtime(params.compute)
    world = ranks.World.current(cpu=runtime.device.type == "cpu")
    classes = params.dataset.classes
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    train = real[real.split == "train"].sort_values("path")
    if train.empty:
        raise RebalanceError("train_gan: no train-split real images in data/counted; run `dvc repro count`")
    images = image_set(
        paths.RAW, list(train.path), cfg.resolution, params.dataset.fit, params.compute.in_memory_mb
    )
    labels = torch.tensor([classes.index(c) for c in train.label])
    torch.manual_seed(cfg.seed)  # the initial weights come from the seed
    generator = core.Generator(cfg.resolution, len(classes), cfg.z_dim, cfg.channels)
    cpu0 = time.process_time()
    generator, summary = core.train(
        generator, images, labels, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
        seed=cfg.seed, channels=cfg.channels, ema_decay=cfg.ema_decay, hflip=cfg.hflip,
        runtime=runtime, world=world,
    )  # fmt: skip
    if not world.main:  # every process holds the same weights; the first one saves them
        return
    with atomic.output_dir(paths.GAN_MODEL) as out:
        ckpt = core.save(generator, out)
        provenance.write_record(out, train)  # which images it saw: synthesize checks it
    report = {**summary, "cpu_seconds": round(time.process_time() - cpu0, 1)}
    report |= {**runtime.describe(), "processes": world.size, "train_images": len(train)}
    report |= {"resolution": cfg.resolution}
    report |= {"parameters": sum(p.numel() for p in generator.parameters()), "checkpoint": ckpt}
    atomic.write_json(paths.GAN_TRAIN, report)
    print(f"train_gan: {summary['steps']} steps in {summary['seconds']} s, checkpoint {ckpt}")


if __name__ == "__main__":
    run_main(main)

"""Stage train_generator@gan: train the class-conditional GAN (rebalance/synth/gan_core.py) of
method `gan` on train-split real images.

Reads data/counted/manifest.csv (files in data/raw) and params `generators.gan`; writes
models/generators/gan (EMA generator weights, config, training_set.json, the model card README.md
and its sample sheet samples.png: rebalance/synth/model_card.py) and metrics/gan_train.json. The
stage exists only while `generators` names gan.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from rebalance import config
from rebalance.core import atomic, device, manifest, paths, ranks
from rebalance.core.device import Runtime
from rebalance.core.errors import RebalanceError, run_main
from rebalance.learn.data import image_set
from rebalance.synth import gan_core as core, model_card, provenance


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
        base_resolution=cfg.base_resolution if cfg.progressive else None, runtime=runtime, world=world,
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
        start = time.perf_counter()
        sheet = sample_sheet(out, generator, classes, cfg.seed, runtime)
        print(f"train_gan: sample sheet in {time.perf_counter() - start:.1f} s", flush=True)
        model_card.write(
            out, key="gan", dataset=params.dataset.name,
            classes={c: int((train.label == c).sum()) for c in classes},
            params=cfg.model_dump(mode="json"), metrics=report, parameters=report["parameters"],
            architecture=[
                f"DCGAN generator, {cfg.resolution} x {cfg.resolution} RGB, class-conditional "
                f"({len(classes)} classes): [z ({cfg.z_dim}), class embedding] -> 4 x 4 -> "
                "(upsample, conv, batch norm, ReLU) per doubling -> tanh; base width "
                f"{cfg.channels} channels (the widest layers 8x)",
                "Trained with the hinge loss against a spectral-norm projection discriminator (not "
                "saved); the saved weights are the EMA of the generator's",
                *growth(cfg.progressive, cfg.base_resolution, cfg.resolution),
            ],
            sheet=sheet,
        )  # fmt: skip
    atomic.write_json(paths.GAN_TRAIN, report)
    print(f"train_gan: {summary['steps']} steps in {summary['seconds']} s, checkpoint {ckpt}")


def growth(progressive: bool, base: int, resolution: int) -> list[str]:
    """The model card's line on progressive growing (none without it)."""
    if not progressive:
        return []
    sizes = " -> ".join(str(r) for r in core.phases(resolution, base))
    return [
        f"Grown progressively ({sizes} px, the steps split evenly across the phases), each new "
        "block faded in over the first half of its phase; the lower resolutions' toRGB/fromRGB "
        "layers are not saved"
    ]


def sample_sheet(
    out: Path, generator: core.Generator, classes: list[str], seed: int, runtime: Runtime
) -> model_card.Sheet:
    """The model card's samples.png: one forward pass per image, its latent from its seed."""
    per_class = model_card.PER_CLASS
    seeds = [s for row in model_card.sheet_seeds(seed, len(classes), per_class) for s in row]
    labels = [c for c in range(len(classes)) for _ in range(per_class)]
    images = core.sample(generator, labels, seeds, runtime).numpy()
    rows = {c: images[i * per_class : (i + 1) * per_class] for i, c in enumerate(classes)}
    return model_card.draw_sheet(
        out, rows, f"one generator pass per image, {generator.config['resolution']} px"
    )


if __name__ == "__main__":
    run_main(main)

"""Stage train_gan: train the class-conditional GAN (rebalance/synth/gan_core.py) on train-split real
images, for synthesis method `gan`.

Reads data/counted/manifest.csv (files in data/raw) and params group `gan_train`; writes
models/gan (EMA generator weights, config, training_set.json) and metrics/gan_train.json. When
`gan` is not in synthesize.methods it trains nothing and says so (the output is then an empty
model folder), so the default build spends no time on it.
"""

from __future__ import annotations

import sys
import time

from rebalance.core import atomic, manifest, params as params_mod, paths, ranks
from rebalance.core.errors import RebalanceError, run_main
from rebalance.synth import provenance


def main() -> None:
    params = params_mod.load()
    cfg = params["gan_train"]
    if "gan" not in params["synthesize"]["methods"]:
        with atomic.output_dir(paths.GAN_MODEL) as out:
            atomic.write_text(out / "NOT_TRAINED.txt", "gan is not in synthesize.methods\n")
        atomic.write_json(paths.GAN_TRAIN, {"trained": False, "note": "gan is not in synthesize.methods"})
        print("train_gan: skipped, gan is not in synthesize.methods")
        return
    import torch  # (and the GAN's modules: seconds a skip need not pay)

    from rebalance.core import device
    from rebalance.learn.data import image_set
    from rebalance.synth import gan_core as core

    if cfg["processes"] > 1 and not ranks.launched():  # dvc repro: launch the data-parallel processes
        sys.exit(ranks.relaunch("stages.train_gan", cfg["processes"]))
    runtime = device.runtime(params)
    world = ranks.World.current(cpu=runtime.device.type == "cpu")
    classes = params["dataset"]["classes"]
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    train = real[real.split == "train"].sort_values("path")
    if train.empty:
        raise RebalanceError("train_gan: no train-split real images in data/counted; run `dvc repro count`")
    images = image_set(paths.RAW, list(train.path), cfg["resolution"], params["compute"]["in_memory_mb"])
    labels = torch.tensor([classes.index(c) for c in train.label])
    torch.manual_seed(cfg["seed"])  # the initial weights come from the seed
    generator = core.Generator(cfg["resolution"], len(classes), cfg["z_dim"], cfg["channels"])
    cpu0 = time.process_time()
    generator, summary = core.train(
        generator, images, labels, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"],
        seed=cfg["seed"], channels=cfg["channels"], ema_decay=cfg["ema_decay"], hflip=cfg["hflip"],
        runtime=runtime, world=world,
    )  # fmt: skip
    if not world.main:  # every process holds the same weights; the first one saves them
        return
    with atomic.output_dir(paths.GAN_MODEL) as out:
        ckpt = core.save(generator, out)
        provenance.write_record(out, train)  # which images it saw: synthesize checks it
    report = {"trained": True, **summary, "cpu_seconds": round(time.process_time() - cpu0, 1)}
    report |= {**runtime.describe(), "processes": world.size, "train_images": len(train)}
    report |= {"resolution": cfg["resolution"]}
    report |= {"parameters": sum(p.numel() for p in generator.parameters()), "checkpoint": ckpt}
    atomic.write_json(paths.GAN_TRAIN, report)
    print(f"train_gan: {summary['steps']} steps in {summary['seconds']} s, checkpoint {ckpt}")


if __name__ == "__main__":
    run_main(main)

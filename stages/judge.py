"""Stage judge: train the classifier that judges every synthetic image, on real train images only.

A small CNN (params `assess`: image size, epochs, width, seed) learns the real train split; its
real val scores become each class's reference (rebalance/synth/judge.py). Stage synthesize scores
every image it makes with it (and its filter rejects by it); stage assess measures the methods in
its feature space. models/judge/judge.pt; metrics/judge.json: its accuracy on the real val images
per class, the reference row every synthetic set is read against.
"""

from __future__ import annotations

import numpy as np
import torch

from rebalance import config
from rebalance.core import atomic, device, manifest, paths
from rebalance.core.errors import run_main
from rebalance.learn import classifier as model_mod
from rebalance.learn.backbones import SmallCNN
from rebalance.learn.data import image_set
from rebalance.synth import quality
from rebalance.synth.judge import Judge


def main() -> None:
    params = config.load()
    cfg, classes = params.assess, params.dataset.classes
    size, fit, budget = cfg.image_size, params.dataset.fit, params.compute.in_memory_mb
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    train = real[real.split == "train"].sort_values("path").reset_index(drop=True)
    val = real[real.split == "val"].sort_values("path").reset_index(drop=True)

    runtime = device.runtime(params.compute)
    x_train = image_set(paths.RAW, list(train.path), size, fit, budget)  # streamed when large
    y_train = torch.tensor([classes.index(c) for c in train.label])
    torch.manual_seed(cfg.seed)
    net = SmallCNN(len(classes), cfg.width)
    steps = cfg.epochs * -(-len(x_train) // cfg.batch_size)
    model_mod.fit(
        net, x_train, y_train, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=1e-4,
        seed=cfg.seed, runtime=runtime,
    )  # fmt: skip
    judge = Judge(quality.FeatureSpace(net, x_train, runtime), y_train.numpy(), classes)
    y_val = np.array([classes.index(c) for c in val.label], dtype=np.int64)
    per_class = judge.calibrate(image_set(paths.RAW, list(val.path), size, fit, budget), y_val)
    measured = [v for v in per_class.values() if v["n"]]
    accuracy = sum(v["accuracy"] * v["n"] for v in measured) / max(1, sum(v["n"] for v in measured))
    judge.save(paths.JUDGE, image_size=size, fit=fit, real_val_accuracy=round(accuracy, 4))
    atomic.write_json(
        paths.JUDGE_METRICS,
        {"real_val_accuracy": round(accuracy, 4), "image_size": size, "epochs": cfg.epochs}
        | {
            "per_class": {
                c: v | {"accuracy": v["accuracy"] and round(v["accuracy"], 4)} for c, v in per_class.items()
            }
        },
    )
    print(f"judge: real val accuracy {accuracy:.3f} (" + ", ".join(
        f"{c} {v['accuracy']:.2f}" for c, v in per_class.items() if v["n"]) + ")")  # fmt: skip


if __name__ == "__main__":
    run_main(main)

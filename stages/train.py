"""Stage family train@<variant>: train the classifier on one variant of data/fused/train.

Variants (params `train.variants`) choose the training data (`real`: real images only;
`balanced`: real + synthetic + flips; `balanced_noflip`: without the flips; `real_oversampled`:
real images duplicated to `balanced`'s per-class counts, the control; `balanced_unfiltered`:
`balanced` with every planned slot's first try, as without the filter, read from
data/synthesized), online augmentation and a class-weighted loss. Every variant trains for
the same number of optimizer steps, so a bigger training set does not also buy more compute,
and picks its best checkpoint on val among the same optimizer steps (every `train.eval_every`
and the last), so a bigger training set does not get fewer checkpoint choices either. Each seed
in `train.seeds` trains one model; DVCLive logs the training loss and validation metrics at
those steps (DVCLive step = optimizer step).
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

import torch
from dvclive import Live

from rebalance import config
from rebalance.core import device, manifest, paths, ranks
from rebalance.core.errors import run_main
from rebalance.learn import backbones, classifier as model_mod
from rebalance.learn.data import fused_set, training_set
from rebalance.learn.variants import BestOnVal, variant_rows


def main() -> None:
    variant = sys.argv[1]
    params = config.load()
    cfg, classes = params.train, params.dataset.classes
    if cfg.processes > 1 and not ranks.launched():  # dvc repro: launch the data-parallel processes
        sys.exit(ranks.relaunch("stages.train", cfg.processes, (variant,)))
    spec = params.variant(variant)
    runtime = device.runtime(params.compute)
    world = ranks.World.current(cpu=runtime.device.type == "cpu")
    fused = manifest.read(paths.FUSED / manifest.FILENAME)
    train_rows = variant_rows(fused, spec, params.flip)
    val_rows = model_mod.split_rows(fused, "val", ["real"])
    budget = params.compute.in_memory_mb  # small sets decoded once, large ones streamed
    x = training_set(train_rows, cfg.image_size, params.dataset.fit, budget)
    y = torch.tensor([classes.index(c) for c in train_rows.label])
    if spec.shuffle_labels:  # a guard rail: such a model must score at chance
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))]
    x_val = fused_set(val_rows, cfg.image_size, params.dataset.fit, budget) if world.main else None
    y_val = [classes.index(c) for c in val_rows.label]

    for seed in cfg.seeds:
        torch.manual_seed(seed)
        net = backbones.build(cfg.backbone, len(classes), cfg.width, cfg.pretrained)
        logs = paths.DVCLIVE / variant / f"seed{seed}"  # the first process logs, validates and saves
        with Live(dir=str(logs), save_dvc_exp=False, dvcyaml=False) if world.main else nullcontext() as live:
            if live is not None:
                live.log_params({"variant": variant, "seed": seed, "n_train": len(x), **spec.model_dump()})
                live.log_params({"compute": {**runtime.describe(), "processes": world.size}})
            best = BestOnVal(live, x_val, y_val, runtime)
            model_mod.fit(
                net, x, y, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                weight_decay=cfg.weight_decay, seed=seed, weighted=spec.weighted,
                augmented=spec.augment, eval_every=cfg.eval_every, on_eval=best, runtime=runtime,
                world=world,
            )  # fmt: skip
        if not world.main:
            continue
        net.load_state_dict(best.state)
        model_mod.save(net, paths.classifier(variant, seed), classes, cfg.image_size, cfg.width, cfg.backbone)
        print(
            f"train@{variant} seed {seed}: {len(x)} images, best val balanced accuracy {best.score:.3f} "
            f"at step {best.best_step} of {cfg.steps}"
            + (f" ({world.size} processes)" if world.size > 1 else "")
        )


if __name__ == "__main__":
    run_main(main)

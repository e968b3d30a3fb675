"""Stage family train@<variant>: train the classifier on one variant of data/fused/train.

Variants (params `train.variants`) choose the training data (`real`: real images only;
`balanced`: real + synthetic + flips; `balanced_noflip`: without the flips), online
augmentation and a class-weighted loss. Every variant trains for the same number of optimizer
steps, so a bigger training set does not also buy more compute. Each seed in `train.seeds`
trains one model; DVCLive logs the training loss and validation metrics every epoch.
"""

from __future__ import annotations

import sys

import pandas as pd
import torch
from dvclive import Live
from sklearn.metrics import balanced_accuracy_score, f1_score

from stages.core import manifest, params as params_mod, paths
from stages.core.errors import RebalanceError, run_main
from stages.core.schema import TRAIN_DATA
from stages.learn import classifier as model_mod


def training_rows(fused: pd.DataFrame, data: str) -> pd.DataFrame:
    """The train-split rows a variant learns from."""
    if data not in TRAIN_DATA:
        raise RebalanceError(
            f"params.yaml: train variant data {data!r} unknown; use one of {', '.join(TRAIN_DATA)}"
        )
    rows = model_mod.split_rows(fused, "train")
    keep = {
        "real": rows.origin == "real",
        "balanced_noflip": rows.origin != "flip",
        "balanced": rows.origin != "",
    }
    return rows[keep[data]].reset_index(drop=True)


class BestOnVal:
    """Keeps the weights with the best validation balanced accuracy, logging each evaluation."""

    def __init__(self, live: Live, x_val: torch.Tensor, y_val: list[int]):
        self.live, self.x_val, self.y_val = live, x_val, y_val
        self.score, self.state = -1.0, None

    def __call__(self, epoch: int, step: int, loss: float, net: torch.nn.Module) -> None:
        pred = model_mod.predict_proba(net, self.x_val).argmax(1)
        score = balanced_accuracy_score(self.y_val, pred)
        self.live.step = epoch
        self.live.log_metric("train/optimizer_step", step)
        self.live.log_metric("train/loss", loss)
        self.live.log_metric("val/balanced_accuracy", score)
        self.live.log_metric("val/macro_f1", f1_score(self.y_val, pred, average="macro"))
        self.live.next_step()
        if score > self.score:
            self.score, self.state = score, {k: v.clone() for k, v in net.state_dict().items()}


def main() -> None:
    variant = sys.argv[1]
    params = params_mod.load()
    cfg, classes = params["train"], params["dataset"]["classes"]
    spec = cfg["variants"][variant]
    torch.set_num_threads(cfg["threads"])
    fused = manifest.read(paths.FUSED / manifest.FILENAME)
    train_rows = training_rows(fused, spec["data"])
    val_rows = model_mod.split_rows(fused, "val", ["real"])
    x = model_mod.load_images(paths.FUSED, list(train_rows.path), cfg["image_size"])
    y = torch.tensor([classes.index(c) for c in train_rows.label])
    if spec["shuffle_labels"]:  # a guard rail: such a model must score at chance
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))]
    x_val = model_mod.load_images(paths.FUSED, list(val_rows.path), cfg["image_size"])
    y_val = [classes.index(c) for c in val_rows.label]

    for seed in cfg["seeds"]:
        torch.manual_seed(seed)
        net = model_mod.SmallCNN(len(classes), cfg["width"])
        with Live(
            dir=str(paths.DVCLIVE / variant / f"seed{seed}"), save_dvc_exp=False, dvcyaml=False
        ) as live:
            live.log_params({"variant": variant, "seed": seed, "n_train": len(x), **spec})
            best = BestOnVal(live, x_val, y_val)
            model_mod.fit(
                net, x, y, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                weight_decay=cfg["weight_decay"], seed=seed, weighted=spec["weighted"],
                augmented=spec["augment"], on_epoch=best,
            )  # fmt: skip
        net.load_state_dict(best.state)
        model_mod.save(net, paths.classifier(variant, seed), classes, cfg["image_size"], cfg["width"])
        print(f"train@{variant} seed {seed}: {len(x)} images, best val balanced accuracy {best.score:.3f}")


if __name__ == "__main__":
    run_main(main)

"""Stage family train@<variant>: train the classifier on one variant of data/fused/train.

Variants (params `train.variants`) choose the training data (`real`: real images only;
`balanced`: real + synthetic + flips; `balanced_noflip`: without flips), online augmentation and
a class-weighted loss. Each seed in `train.seeds` trains one model; DVCLive logs every epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from dvclive import Live
from stages import manifest
from stages import model as model_mod
from stages import params as params_mod
from stages.errors import RebalanceError, run_main

FUSED = Path("data/fused")
DATA_ORIGINS = {"real": ["real"], "balanced": None, "balanced_noflip": "not flip"}


def training_rows(fused, data: str):
    if data not in DATA_ORIGINS:
        raise RebalanceError(
            f"params.yaml: train variant data {data!r} unknown; use one of {', '.join(DATA_ORIGINS)}"
        )
    rows = model_mod.split_rows(fused, "train")
    if data == "real":
        return rows[rows.origin == "real"].reset_index(drop=True)
    if data == "balanced_noflip":
        return rows[rows.origin != "flip"].reset_index(drop=True)
    return rows


def main() -> None:
    variant = sys.argv[1]
    params = params_mod.load()
    cfg, classes = params["train"], params["dataset"]["classes"]
    spec = cfg["variants"][variant]
    fused = manifest.read(FUSED / manifest.FILENAME)
    train_rows = training_rows(fused, spec["data"])
    val_rows = model_mod.split_rows(fused, "val", ["real"])
    size = cfg["image_size"]
    torch.set_num_threads(cfg.get("threads", 2))
    x = model_mod.load_images(FUSED, list(train_rows.path), size)
    y = torch.tensor([classes.index(c) for c in train_rows.label])
    if spec.get("shuffle_labels", False):  # leakage guard rail: must score at chance
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))]
    xv = model_mod.load_images(FUSED, list(val_rows.path), size)
    yv = [classes.index(c) for c in val_rows.label]

    for seed in cfg["seeds"]:
        torch.manual_seed(seed)
        net = model_mod.SmallCNN(len(classes), cfg["width"])
        best = {"score": -1.0, "state": None}
        with Live(dir=f"dvclive/{variant}/seed{seed}", save_dvc_exp=False, dvcyaml=False) as live:
            live.log_params({"variant": variant, "seed": seed, "n_train": len(x), **spec})

            def on_epoch(epoch: int, loss: float, net: torch.nn.Module) -> None:
                pred = model_mod.predict_proba(net, xv).argmax(1)
                bacc = balanced_accuracy_score(yv, pred)
                live.log_metric("train/loss", loss)
                live.log_metric("val/balanced_accuracy", bacc)
                live.log_metric("val/macro_f1", f1_score(yv, pred, average="macro"))
                live.next_step()
                if bacc > best["score"]:
                    best["score"] = bacc
                    best["state"] = {k: v.clone() for k, v in net.state_dict().items()}

            model_mod.fit(
                net,
                x,
                y,
                epochs=cfg["epochs"],
                batch_size=cfg["batch_size"],
                lr=cfg["lr"],
                weight_decay=cfg["weight_decay"],
                seed=seed,
                weighted=spec.get("weighted", False),
                augmented=spec.get("augment", False),
                on_epoch=on_epoch,
            )
        net.load_state_dict(best["state"])
        model_mod.save(net, Path(f"models/{variant}/seed{seed}.pt"), classes, size, cfg["width"])
        print(f"train@{variant} seed {seed}: {len(x)} images, best val balanced accuracy {best['score']:.3f}")


if __name__ == "__main__":
    run_main(main)

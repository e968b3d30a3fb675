"""What each classifier variant learns from (`train.variants`: `data`, or `balanced_<method>`):
rows of the fused train split, oversampled where a variant must match `balanced`'s per-class
counts, and the best-on-val checkpoint every variant is selected by."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from dvclive import Live

from rebalance.core.device import CPU, Runtime
from rebalance.core.errors import RebalanceError
from rebalance.core.schema import TRAIN_DATA
from rebalance.learn import classifier as model_mod, metrics

OVERSAMPLE_SEED = 0  # which real images of a class get one copy more (`real_oversampled`)


def oversampled_rows(real: pd.DataFrame, target: dict[str, int], seed: int = OVERSAMPLE_SEED) -> pd.DataFrame:
    """Random oversampling of the real train rows `real` to `target` rows per class. A class with
    n real images and target t holds every image t // n times plus t % n of them, drawn without
    replacement (seeded), once more: duplicates spread as evenly as possible, no synthetic image."""
    rng = np.random.default_rng(seed)
    parts = []
    for label in sorted(target):
        members = real[real.label == label]
        n, want = len(members), int(target[label])
        if n == 0:
            raise RebalanceError(f"variant data real_oversampled: class {label!r} has no real train image")
        repeats, extra = divmod(want, n)
        pick = np.concatenate([np.repeat(np.arange(n), repeats), rng.choice(n, extra, replace=False)])
        parts.append(members.iloc[np.sort(pick)])
    return pd.concat(parts).sort_values("path", kind="stable").reset_index(drop=True)


def method_rows(rows: pd.DataFrame, method: str, seed: int = OVERSAMPLE_SEED) -> pd.DataFrame:
    """`balanced_<method>`: the real train rows and flips of real images, plus `method`'s images
    and their flips, the latter repeated (as in oversampled_rows) so that every class has as many
    rows as in `balanced`. A class the method made nothing for is filled with repeated real rows
    (as real_oversampled), so the counts match whatever the shares.
    (A flip's `source` is a raw path for a real image, the fused path for a synthetic one.)"""
    is_flip = rows.origin == "flip"
    synthetic = set(rows.path[~rows.origin.isin(["real", "flip"])])
    mine = set(rows.path[rows.origin == method])
    base = rows[(rows.origin == "real") | (is_flip & ~rows.source.isin(synthetic))]
    own = rows[(rows.origin == method) | (is_flip & rows.source.isin(mine))]
    parts = [base]
    for label, want in sorted(rows.label.value_counts().to_dict().items()):
        have, of_label = int((base.label == label).sum()), own[own.label == label]
        if want > have:
            fill = of_label if len(of_label) else base[base.label == label]
            parts.append(oversampled_rows(fill, {label: want - have}, seed))
    return pd.concat(parts).sort_values("path", kind="stable").reset_index(drop=True)


def training_rows(fused: pd.DataFrame, data: str, method: str | None = None) -> pd.DataFrame:
    """The train-split rows a variant learns from (a path appears more than once when oversampled)."""
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
    if method is not None:  # balanced_<method>: one generator's images only, balanced's counts
        return method_rows(rows, method)
    if data == "real_oversampled":  # the control: balanced's per-class counts from real images alone
        target = rows[keep["balanced"]].label.value_counts().to_dict()
        return oversampled_rows(rows[keep["real"]], target)
    return rows[keep[data]].reset_index(drop=True)


class BestOnVal:
    """Keeps the weights with the best validation balanced accuracy (the earliest on ties), logging
    each evaluation to DVCLive at its optimizer step. `steps` lists the steps evaluated."""

    def __init__(self, live: Live | None, x_val, y_val: list[int], runtime: Runtime = CPU):
        self.live, self.x_val, self.y_val, self.runtime = live, x_val, y_val, runtime
        self.score, self.state, self.best_step, self.steps = -1.0, None, None, []

    def __call__(self, step: int, epoch: float, loss: float, net: torch.nn.Module) -> None:
        pred = model_mod.predict_proba(net, self.x_val, runtime=self.runtime).argmax(1)
        score = metrics.balanced_accuracy(self.y_val, pred)
        self.steps.append(step)
        if self.live is not None:
            self.live.step = step
            self.live.log_metric("train/epoch", round(epoch, 4))
            self.live.log_metric("train/loss", loss)
            self.live.log_metric("val/balanced_accuracy", score)
            self.live.log_metric("val/macro_f1", metrics.macro_f1(self.y_val, pred))
            self.live.next_step()
        if score > self.score:
            self.score, self.best_step = score, step
            self.state = {k: v.clone() for k, v in net.state_dict().items()}

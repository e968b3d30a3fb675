"""What each classifier variant learns from (`train.variants`: its `data`, and its `method` for a
per-generator variant balanced_<method>): rows of the fused train split, oversampled where a
variant must match `balanced`'s per-class counts (and, for `balanced_unfiltered`, the first tries
of data/synthesized), and the best-on-val checkpoint every variant is selected by."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from dvclive import Live

from rebalance.config.schema import TRAIN_DATA
from rebalance.core import manifest, paths
from rebalance.core.device import CPU, Runtime
from rebalance.core.errors import RebalanceError
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
    synthetic = set(rows.path[manifest.synthetic(rows)])
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


def parts(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Train rows by what they are: `real` images, `real_flips` (flips of real images), `synthetic`
    images and `synthetic_flips` (a flip's `source` is a raw path for a real image, the fused path
    for a synthetic one)."""
    is_flip = rows.origin == "flip"
    made = manifest.synthetic(rows)
    of_made = is_flip & rows.source.isin(set(rows.path[made]))
    return {
        "real": rows[rows.origin == "real"],
        "real_flips": rows[is_flip & ~of_made],
        "synthetic": rows[made],
        "synthetic_flips": rows[of_made],
    }


def matched_control_rows(rows: pd.DataFrame, seed: int = OVERSAMPLE_SEED) -> pd.DataFrame:
    """`real_oversampled`, the control: `balanced`'s train rows with every synthetic image replaced
    by a duplicated real image of its class and every flip of one by a duplicated flip of a real
    image (oversampled_rows' spread). So it differs from `balanced` only in the synthetic images:
    the same real images, the same flips of real images, the same per-class totals and the same
    number of flips per class. A class without flips of real images (flip.classes) duplicates
    real images in their place."""
    p = parts(rows)
    out = [p["real"], p["real_flips"]]
    for label in sorted(set(rows.label)):
        images = int((p["synthetic"].label == label).sum())
        flips = int((p["synthetic_flips"].label == label).sum())
        if images:
            out.append(oversampled_rows(p["real"], {label: images}, seed))
        if flips:
            own_flips = p["real_flips"][p["real_flips"].label == label]
            out.append(oversampled_rows(own_flips if len(own_flips) else p["real"], {label: flips}, seed))
    return pd.concat(out).sort_values("path", kind="stable").reset_index(drop=True)


def unfiltered_rows(rows: pd.DataFrame, unfiltered: pd.DataFrame, flips: bool) -> pd.DataFrame:
    """`balanced_unfiltered`, curation's control: `balanced`'s real images and flips of real
    images, and in place of its synthetic images and their flips, every planned slot's first try
    (`unfiltered`: data/synthesized/unfiltered.csv; the kept image where it passed at once) and,
    when train images are flipped (`flips`), each one's mirror, made when read. So it is the
    release as it would be without `synthesize.filter`. Column `folder` says where an image is
    read (fused, synthesized), `mirror` whether it is mirrored then; rows in runs of both."""
    p = parts(rows)
    base = pd.concat([p["real"], p["real_flips"]]).sort_values("path", kind="stable")
    first = unfiltered.sort_values("path", kind="stable")
    out = [base.assign(folder="fused", mirror=False), first.assign(folder="synthesized", mirror=False)]
    if flips:  # (origin flip, as stage flip's: composition() counts them so)
        out.append(first.assign(folder="synthesized", mirror=True, origin="flip", source=first.path))
    return pd.concat(out).reset_index(drop=True)


def composition(rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{class: {origin: rows}} of a variant's training rows (duplicates counted)."""
    counts = rows.groupby(["label", "origin"]).size()
    return {label: {o: int(n) for o, n in counts[label].items()} for label in sorted(set(rows.label))}


def training_rows(
    fused: pd.DataFrame,
    data: str,
    method: str | None = None,
    unfiltered: pd.DataFrame | None = None,
    flips: bool = True,
) -> pd.DataFrame:
    """The train-split rows a variant learns from (a path appears more than once when oversampled).
    `balanced_unfiltered` also reads `unfiltered` (data/synthesized/unfiltered.csv) and `flips`
    (whether train images are flipped: flip.enabled and train in flip.splits)."""
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
    if data == "real_oversampled":  # the control: balanced with duplicated real images for synthetic
        return matched_control_rows(rows)
    if data == "balanced_unfiltered":  # curation's control: each slot's first try, unjudged
        if unfiltered is None:
            raise RebalanceError("variant data balanced_unfiltered: data/synthesized/unfiltered.csv missing; "
                                 "run `dvc repro synthesize`")  # fmt: skip
        return unfiltered_rows(rows, unfiltered, flips)
    return rows[keep[data]].reset_index(drop=True)


def variant_rows(fused: pd.DataFrame, spec, flip) -> pd.DataFrame:
    """training_rows of variant `spec` (a train.variants entry) in this repository: the unfiltered
    first tries from data/synthesized/unfiltered.csv where it needs them; `flip`: params.flip."""
    first = None
    if spec.data == "balanced_unfiltered" and (paths.SYNTHESIZED / paths.UNFILTERED_MANIFEST).exists():
        first = manifest.read(paths.SYNTHESIZED / paths.UNFILTERED_MANIFEST)
    return training_rows(fused, spec.data, spec.method, first, flip.enabled and "train" in flip.splits)


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

"""Stage assess: offline quality of the synthetic train images, per class and method.

In the feature space of the judge (stage judge: a small CNN trained on the real train split, its
penultimate layer and colour statistics, rebalance/synth/quality.py) writes
metrics/synthesis_quality.json (precision/recall, density/coverage, Fréchet distance,
real-vs-synthetic AUC, near-copies, intended-class rate; real val images as the reference a
perfect generator would match; the filter's counts) and `dvc plots` images under
metrics/plots/synthesis/: a t-SNE map of real vs synthetic and one sample grid per class.
With `assess.features` (a local DINOv2 or CLIP folder, rebalance/synth/foundation.py), precision,
recall, density, coverage and the Fréchet distance are also computed in that model's embedding,
under each class's `foundation`, with the intended-class rate of a linear probe trained on the
real train embeddings: a judge independent of the filter's. The model is described under the
report's `foundation`.
"""

from __future__ import annotations

import json

import numpy as np

from rebalance import config
from rebalance.core import atomic, device, manifest, paths
from rebalance.core.errors import run_main
from rebalance.core.images import load_array, load_stack
from rebalance.core.progress import progress
from rebalance.dataset import duplicates, shards
from rebalance.learn.data import fused_set
from rebalance.synth import quality
from rebalance.synth.foundation import Embedder
from rebalance.synth.judge import Judge
from rebalance.synth.quality_plots import grid_plot, tsne_plot

GRID_PX = 96  # sample-grid tiles (images of any size are resized to it)


def r4(x: float) -> float | None:
    return None if x != x else round(float(x), 4)


def listed(images, dist, nearest, others, key: str) -> list[dict]:
    """The near-copies quality.near_copies found, as report rows: image, its copy (under `key`), bits.
    `images` and `others` are taken by position (`nearest` holds positions), whatever their index."""
    images, others = list(images), list(others)
    found = np.flatnonzero(nearest >= 0)
    return [{"image": images[i], key: others[nearest[i]], "bits": int(dist[i])} for i in found]


def sample_quality(real_f: np.ndarray, f: np.ndarray, cfg) -> dict:
    """Precision, recall, density, coverage (k-NN balls, seeded samples of at most max_images) and
    the Fréchet distance of features `f` against the real train features `real_f` of their class."""
    s_real, s_fake = (quality.sample(len(x), cfg.max_images, cfg.seed) for x in (real_f, f))
    precision, recall = quality.precision_recall(real_f[s_real], f[s_fake], cfg.k)
    density, coverage = quality.density_coverage(real_f[s_real], f[s_fake], cfg.k)
    return {
        "precision": r4(precision),
        "recall": r4(recall),
        "density": r4(density),
        "coverage": r4(coverage),
        "frechet": r4(quality.frechet_distance(real_f, f)),
    }


def main() -> None:
    params = config.load()
    cfg = params.assess
    classes = params.dataset.classes
    size, fit = cfg.image_size, params.dataset.fit
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    synth = manifest.read(paths.SYNTHESIZED / manifest.FILENAME)
    train = real[real.split == "train"].sort_values("path").reset_index(drop=True)
    val = real[real.split == "val"].sort_values("path").reset_index(drop=True)
    held_out = real[real.split != "train"].sort_values("path").reset_index(drop=True)

    runtime = device.runtime(params.compute)
    processes = params.compute.processes
    budget = params.compute.in_memory_mb
    judge = Judge.load(paths.JUDGE, runtime)  # stage judge's classifier, trained on real train only
    space = judge.space
    f_train = space.train
    train_index = {p: i for i, p in enumerate(train.path)}
    prints = duplicates.read_table(paths.FINGERPRINTS)  # stage count's: no real image decoded again
    h_train = np.array([prints[p][1].phash for p in train.path], dtype=np.uint64)
    h_held_out = np.array([prints[p][1].phash for p in held_out.path], dtype=np.uint64)  # copies: a leak
    cap, bits = cfg.max_images, cfg.near_copy_bits
    groups = {"real_val": (val, paths.RAW)}
    for method in sorted(set(synth.origin)):
        groups[method] = (
            synth[synth.origin == method].sort_values("path").reset_index(drop=True),
            paths.SYNTHESIZED,
        )

    # with assess.features: real train embeddings, and a linear probe on them (a judge the filter never saw)
    embedder, e_train, probe = Embedder.load(cfg.features, runtime) if cfg.features else None, None, None
    if embedder is not None:
        e_train = embedder.embed(fused_set(train, embedder.image_size, fit, budget, paths.RAW))
        probe = quality.linear_probe(e_train, train.label.to_numpy(), cfg.seed)

    report: dict = {
        "feature_space": "SmallCNN penultimate + colour mean/std, z-scored on real train",
        # the judge the filter kept images by: rates of filtered methods are of the kept images
        "classifier": {"image_size": size, "epochs": cfg.epochs, "judge": paths.JUDGE.as_posix()},
        "filter": json.loads(paths.FILTER.read_text()) if paths.FILTER.exists() else None,
        "max_images": cap,  # precision/recall, AUC and mean hash distance: a seeded sample of each set
        "per_method": {},
    }
    tsne_feats, tsne_groups, samples = [f_train], [f"real/{c}" for c in train.label], {}
    for name, (rows, folder) in progress(groups.items(), "assess", total=len(groups), unit="method"):
        per_class = {}
        for label in classes:
            sel = rows[rows.label == label]
            if sel.empty:
                continue
            sources = [shards.source(folder, r) for r in sel.itertuples()]  # files, or packed samples
            f, predicted = space(fused_set(sel, size, fit, budget, folder))
            real_f = f_train[(train.label == label).to_numpy()]
            s_real, s_fake = (quality.sample(len(x), cap, cfg.seed) for x in (real_f, f))
            auc = quality.real_vs_synthetic_auc(real_f[s_real], f[s_fake], cfg.seed)
            own_source = np.array([train_index.get(src, -1) for src in sel.source])  # its own source
            hashes = quality.pack(quality.phash_files(sources, f"phash {name}/{label}", processes))
            dist, nearest = quality.near_copies(hashes, h_train, bits, exclude=own_source)  # every image
            copies = listed(sel.path, dist, nearest, train.path, "nearest_train")
            closest, _ = quality.nearest_words(hashes[s_fake], h_train, own_source[s_fake])
            held_copies = []
            if name != "real_val":  # val itself is held out
                dist, nearest = quality.near_copies(hashes, h_held_out, bits)
                held_copies = listed(sel.path, dist, nearest, held_out.path, "nearest_held_out")
            per_class[label] = {
                "n": len(sel),
                "intended_class_rate": r4((predicted == classes.index(label)).mean()),
                **sample_quality(real_f, f, cfg),
                "real_vs_synthetic_auc": r4(auc),
                "phash_min_bits_mean": r4(closest.mean()),
                "compared": {"real_train": len(s_real), "images": len(s_fake)},  # of each, at most max_images
                "near_copies": len(copies),
                "near_copy_examples": copies[:5],
                "near_copies_of_val_test": len(held_copies),  # memorised held-out images: must be 0
                "near_copy_of_val_test_examples": held_copies[:5],
            }
            if embedder is not None:  # the same measures in the foundation model's embedding
                e = embedder.embed(fused_set(sel, embedder.image_size, fit, budget, folder))
                per_class[label]["foundation"] = {
                    "intended_class_rate": r4((probe.predict(e) == label).mean()),
                    **sample_quality(e_train[(train.label == label).to_numpy()], e, cfg),
                }
            if name != "real_val":
                tsne_feats.append(f)
                tsne_groups += [f"{name}/{label}"] * len(sel)
                grid = [load_array(s, GRID_PX, fit) for s in sources[: cfg.grid]]
                samples.setdefault(label, {})[name] = np.stack(grid)
        report["per_method"][name] = per_class
    report["foundation"] = embedder.describe if embedder else None
    report["classifier"]["real_val_accuracy"] = report["per_method"]["real_val"] and r4(
        np.average(
            [v["intended_class_rate"] for v in report["per_method"]["real_val"].values()],
            weights=[v["n"] for v in report["per_method"]["real_val"].values()],
        )
    )
    atomic.write_json(paths.SYNTHESIS_QUALITY, report)

    with atomic.output_dir(paths.SYNTHESIS_PLOTS) as out:
        tsne_plot(np.concatenate(tsne_feats), tsne_groups, cfg.seed, out / "tsne.png")
        for label in classes:
            real_rows = train[train.label == label].path[: cfg.grid]
            real = {"real": load_stack(paths.RAW, real_rows, GRID_PX, fit)}
            made = samples.get(label, {})
            grid_plot(label, real | made, cfg.grid, out / f"samples_{label}.png")  # every method
            for method, images in made.items():  # and one grid per method and class
                grid_plot(label, real | {method: images}, cfg.grid, out / f"samples_{method}_{label}.png")
    for name, per_class in report["per_method"].items():
        print(
            f"assess: {name}: "
            + ", ".join(
                f"{c} intended {v['intended_class_rate']} fd {v['frechet']} "
                f"P/R {v['precision']}/{v['recall']}"
                for c, v in per_class.items()
            )
        )


if __name__ == "__main__":
    run_main(main)

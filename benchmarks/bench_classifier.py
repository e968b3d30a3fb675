"""Classifier training throughput: the project's loop (rebalance.learn.classifier.fit) against bare torch.

Both train the same backbone (`--backbone`: small_cnn, the SmallCNN of rebalance/learn/backbones.py, or
a timm model via rebalance.learn.backbones.build, e.g. resnet18; same width, fresh weights from the
same seed) for the same number of optimizer steps at the same batch size, on the same in-memory
random uint8 images (N x 3 x S x S, 4 classes), in this one process with the same torch threads.

- project: `fit(model, images, labels, ...)` on a TensorSet (rebalance.learn.data), runtime
  Runtime(--device, --precision's autocast, --workers DataLoader workers): DataLoader over
  pre-drawn batches, to_input, AdamW + OneCycleLR, CrossEntropyLoss, the losses read at the end
  (as stage train runs it, minus the on_eval validation calls, which are not training).
- bare: the same batch indices, `x[idx]` moved to the device and converted there the same way
  (SmallCNN: /127.5 - 1; timm: (/255 - mean) / std), forward under the same autocast,
  CrossEntropyLoss, zero_grad, backward, AdamW step.

Each is warmed up first (--warmup steps on a throw-away model), then timed --repeats times,
alternating which goes first; the fastest run of each is kept (on a shared machine other processes
only ever add time; every run's seconds are in the JSON). images/s = steps x batch size / seconds. Prints
project/bare (the target: >= 0.9).

    python benchmarks/bench_classifier.py [--steps 60] [--batch-size 64] [--backbone small_cnn]
        [--workers 0] [--device cpu] [--precision auto] [--out benchmarks/results/bench_classifier.json]
    python benchmarks/bench_classifier.py --backbone resnet18 --size 32 --steps 20
    python benchmarks/bench_classifier.py --device cuda --backbone resnet50 --size 224   # GPU profile
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from _project import write_result
from torch import nn

from rebalance.core import device as device_mod
from rebalance.core.device import Runtime, set_threads
from rebalance.learn import backbones, classifier, data

RESULTS = Path(__file__).resolve().parent / "results"
LR, WEIGHT_DECAY, SEED = 3e-3, 1e-4, 0


def build(name: str, n_classes: int, width: int) -> nn.Module:
    torch.manual_seed(SEED)
    return backbones.build(name, n_classes, width)


def project(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, runtime: Runtime
) -> None:
    kwargs = {"lr": LR, "weight_decay": WEIGHT_DECAY, "seed": SEED, "runtime": runtime}
    classifier.fit(model, x, y, steps=steps, batch_size=batch, **kwargs)


def bare(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, runtime: Runtime
) -> None:
    device = runtime.device
    if isinstance(model, classifier.SmallCNN):

        def convert(xb: torch.Tensor) -> torch.Tensor:
            return xb.float().div_(127.5).sub_(1.0)
    else:
        mean, std = (t.to(device) for t in backbones.input_stats(model))

        def convert(xb: torch.Tensor) -> torch.Tensor:
            return (xb.float().div_(255.0) - mean) / std

    order = data.batch_order(len(x), steps, batch, torch.Generator().manual_seed(SEED))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    model.to(device).train()
    for idx in order:
        with runtime.autocast():
            logits = model(convert(x[idx].to(device)))
        loss = loss_fn(logits.float(), y[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss.item()


def run(a: argparse.Namespace) -> dict:
    backbone, n, size, width, steps, batch = a.backbone, a.n, a.size, a.width, a.steps, a.batch_size
    warmup, repeats, workers = a.warmup, a.repeats, a.workers
    load = round(os.getloadavg()[0], 2)
    set_threads(a.threads)  # recorded by runtime.describe() below
    device = device_mod.select(a.device)
    runtime = Runtime(device, device_mod.autocast_dtype(device, a.precision), workers)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 4, (n,), generator=gen)
    loops = {"project": project, "bare": bare}
    for fn in loops.values():
        fn(build(backbone, 4, width), x, y, warmup, batch, runtime)
    timings: dict[str, list[float]] = {name: [] for name in loops}
    for rep in range(repeats):
        for name in loops if rep % 2 == 0 else reversed(loops):
            model = build(backbone, 4, width)
            start = time.perf_counter()
            loops[name](model, x, y, steps, batch, runtime)
            timings[name].append(time.perf_counter() - start)
    rate = {name: steps * batch / min(t) for name, t in timings.items()}
    return {
        "backbone": backbone,
        "width": width,
        "images": n,
        "image_size": size,
        "steps": steps,
        "batch_size": batch,
        "workers": workers,
        **runtime.describe(),
        "repeats": repeats,
        "load_average_1min": [load, round(os.getloadavg()[0], 2)],  # before, after: others' CPU use
        "seconds": {name: [round(s, 3) for s in t] for name, t in timings.items()},
        "project_images_per_second": round(rate["project"], 1),
        "bare_images_per_second": round(rate["bare"], 1),
        "ratio": round(rate["project"] / rate["bare"], 3),
        "target": 0.9,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default=backbones.SMALL_CNN, help="small_cnn or a timm name")
    ap.add_argument("--width", type=int, default=16, help="small_cnn's first conv channels")
    ap.add_argument("--n", type=int, default=2048, help="images in memory")
    ap.add_argument("--size", type=int, default=64, help="pixels, square")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps of each loop first")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each (fastest kept)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the project loop")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    ap.add_argument("--device", default="cpu", help="compute.device: cpu, cuda, auto, ...")
    ap.add_argument("--precision", default="auto", help="compute.precision: auto (bf16 on a GPU), fp32, ...")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_classifier.json")
    a = ap.parse_args()
    r = run(a)
    print(
        f"{r['backbone']} (width {r['width']}), {r['steps']} steps x {r['batch_size']} images "
        f"{r['image_size']}x{r['image_size']}, {r['threads']} threads, {r['workers']} workers, "
        f"{r['device_name']} ({r['autocast'] or 'float32'})"
    )
    sec = r["seconds"]
    print(f"project (classifier.fit): {r['project_images_per_second']:.1f} images/s  {sec['project']} s")
    print(f"bare torch loop:          {r['bare_images_per_second']:.1f} images/s  {sec['bare']} s")
    print(f"load average (1 min) before/after: {r['load_average_1min']}")
    if r["load_average_1min"][0] > 0.5:
        print("note: load average > 0.5 before the run: other processes may have shared the cores")
    print(f"ratio project/bare: {r['ratio']:.3f} (target: >= {r['target']})")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(a.out, r)
    print(json.dumps(r))


if __name__ == "__main__":
    main()

"""Synthesis method `diffusion`: class-conditional diffusion images, whole or locally regenerated.

Backends (`synthesize.diffusion.backend`):
- `unet` (default): the class-conditional UNet that stage `train_diffusion` trained on train-split
  real images (models/diffusion), sampled with a fast solver (DDIM or DPM-Solver++) in batches.
  `mode: full` makes images from noise (`source`/`root` empty); `mode: local` regenerates only
  masked regions of a real train image of the same class, RePaint-style, and then restores every
  pixel outside the mask byte for byte (`source`/`root` = that image).
- `sd_inpaint`: a Stable Diffusion inpainting pipeline loaded from a local folder (optional LoRA),
  prompted from per-image attributes (see stages/synth/diffusion_sd.py); always local.

Generated images are made at the model's resolution and upsampled (bicubic) to the size of the
dataset's train images. Every image is determined by its seed
`image_seed(dataset, class, "diffusion", index)`, the checkpoint hash and the sampler settings,
all recorded in the manifest row's `seed` and `detail`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stages import params as params_mod
from stages.errors import RebalanceError
from stages.images import load_array, save_png
from stages.synth import Context, image_seed, output_path

METHOD = "diffusion"
VERSION = 1  # bump when a code change alters the images
DEFAULTS: dict[str, Any] = {
    "backend": "unet",
    "model_dir": "models/diffusion",
    "mode": "full",
    "scheduler": "ddim",
    "steps": 25,
    "guidance": 1.0,
    "batch_size": 32,
    "mask": {"blobs": 3, "fraction": 0.3},
    "output_size": None,
    "sd": {},
}
BACKENDS = ("unet", "sd_inpaint")
MODES = ("full", "local")


def settings(params: dict) -> dict[str, Any]:
    """synthesize.diffusion merged over the defaults, checked (errors name the key and the fix)."""
    given = params.get("synthesize", {}).get("diffusion") or {}
    cfg = params_mod.with_defaults(given, DEFAULTS, "synthesize.diffusion")
    cfg["mask"] = {**DEFAULTS["mask"], **(given.get("mask") or {})}
    checks = [
        (cfg["backend"] in BACKENDS, "backend", f"must be one of {', '.join(BACKENDS)}"),
        (cfg["mode"] in MODES, "mode", f"must be one of {', '.join(MODES)}"),
        (cfg["scheduler"] in ("ddim", "dpm"), "scheduler", "must be ddim or dpm"),
        (isinstance(cfg["steps"], int) and 1 <= cfg["steps"] <= 1000, "steps", "must be an integer 1..1000"),
        (
            isinstance(cfg["guidance"], (int, float)) and cfg["guidance"] >= 0,
            "guidance",
            "must be a number >= 0",
        ),
        (
            isinstance(cfg["batch_size"], int) and cfg["batch_size"] >= 1,
            "batch_size",
            "must be a positive integer",
        ),
        (0 < cfg["mask"]["fraction"] < 1, "mask.fraction", "must be between 0 and 1"),
        (isinstance(cfg["mask"]["blobs"], int) and cfg["mask"]["blobs"] >= 1, "mask.blobs", "must be >= 1"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise RebalanceError(f"params.yaml: synthesize.diffusion.{key} {message}")
    return cfg


def evaluations_per_image(cfg: dict) -> int:
    """UNet evaluations per generated image (guidance doubles each step's batch)."""
    return cfg["steps"] * (2 if cfg["guidance"] != 1.0 else 1)


@functools.lru_cache(maxsize=4)
def _model(model_dir: str):
    from stages.synth import diffusion_core as core

    folder = Path(model_dir)
    if not (folder / core.WEIGHTS).exists():
        raise RebalanceError(
            f"{folder}: no trained diffusion model; run `dvc repro train_diffusion` "
            "(or set synthesize.diffusion.model_dir)"
        )
    unet, config = core.load(folder)
    return unet, config, core.checkpoint_hash(folder)


def blob_mask(rng: np.random.Generator, size: int, blobs: int, fraction: float) -> np.ndarray:
    """A boolean size x size mask of `blobs` random ellipses covering about `fraction` of it."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    mask = np.zeros((size, size), bool)
    area = fraction * size * size / blobs
    for _ in range(blobs):
        aspect = rng.uniform(0.6, 1.6)
        ry = np.sqrt(area / np.pi * aspect)
        rx = np.sqrt(area / np.pi / aspect)
        cy, cx = rng.uniform(ry, size - ry), rng.uniform(rx, size - rx)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 uint8 array to size x size (bicubic)."""
    if array.shape[0] == size and array.shape[1] == size:
        return array
    return np.asarray(Image.fromarray(array).resize((size, size), Image.BICUBIC), dtype=np.uint8)


def downsample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A mask at `size` that covers every low-res pixel touching the full-res mask."""
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BOX)
    return np.asarray(im) > 0


def compose(original: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Generated pixels inside the mask, the original's exact bytes outside it."""
    return np.where(mask[..., None], generated, original).astype(np.uint8)


def output_size(ctx: Context, cfg: dict) -> int:
    if cfg["output_size"]:
        return int(cfg["output_size"])
    if "diffusion.output_size" not in ctx.cache:
        first = ctx.train_real.sort_values("path").iloc[0]
        ctx.cache["diffusion.output_size"] = int(load_array(ctx.raw_dir / first.path).shape[0])
    return ctx.cache["diffusion.output_size"]


def local_sources(ctx: Context, label: str):
    """Train real images of `label`, in a per-class seeded order (index i uses entry i mod n)."""
    memo = f"diffusion.sources.{label}"
    if memo in ctx.cache:
        return ctx.cache[memo]
    sources = ctx.train_real[ctx.train_real.label == label].sort_values("path").reset_index(drop=True)
    if sources.empty:
        raise RebalanceError(
            f"diffusion: mode local needs train images of {label!r} and there are none; "
            "use synthesize.diffusion.mode: full"
        )
    rng = np.random.default_rng(image_seed(ctx.params["dataset"]["name"], label, METHOD))
    ctx.cache[memo] = sources.iloc[rng.permutation(len(sources))].reset_index(drop=True)
    return ctx.cache[memo]


def describe(cfg: dict) -> dict[str, Any]:
    """What determines an image besides its seed (goes into `detail` and the cache key)."""
    if cfg["backend"] == "sd_inpaint":
        from stages.synth import diffusion_sd

        return {"backend": "sd_inpaint", "mode": "local", "mask": cfg["mask"], **diffusion_sd.describe(cfg)}
    _, _, ckpt = _model(str(cfg["model_dir"]))
    return {
        "backend": "unet",
        "checkpoint": ckpt,
        "mode": cfg["mode"],
        "scheduler": cfg["scheduler"],
        "steps": cfg["steps"],
        "guidance": cfg["guidance"],
        "unet_evals": evaluations_per_image(cfg),
        **({"mask": cfg["mask"]} if cfg["mode"] == "local" else {}),
    }


def cache_key(ctx: Context, label: str, index: int) -> str:
    """Everything that determines image `index` of `label`: reuse an existing file iff it matches.

    Includes the checkpoint hash (unet) or pipeline fingerprint (sd_inpaint), sampler settings,
    seed, output size, the index's batch block and, in local mode, the source image's checksum.
    """
    import json

    cfg = settings(ctx.params)
    if "diffusion.describe" not in ctx.cache:
        ctx.cache["diffusion.describe"] = describe(cfg)
    seed = image_seed(ctx.params["dataset"]["name"], label, METHOD, index)
    key = {
        "version": VERSION,
        "label": label,
        "seed": seed,
        "size": output_size(ctx, cfg),
        "block": [index // cfg["batch_size"], cfg["batch_size"]],
        **ctx.cache["diffusion.describe"],
    }
    if cfg["backend"] == "sd_inpaint" or cfg["mode"] == "local":
        sources = local_sources(ctx, label)
        src = sources.iloc[index % len(sources)]
        key["source"] = [src.path, src.get("sha256", "")]
    return json.dumps(key, sort_keys=True)


def generate(ctx: Context, label: str, indices: list[int]) -> list[dict]:
    cfg = settings(ctx.params)
    if cfg["backend"] == "sd_inpaint":
        from stages.synth import diffusion_sd

        return diffusion_sd.generate(ctx, label, indices, cfg)
    return _generate_unet(ctx, label, indices, cfg)


def _generate_unet(ctx: Context, label: str, indices: list[int], cfg: dict) -> list[dict]:
    from stages import manifest
    from stages.synth import diffusion_core as core

    classes = ctx.params["dataset"]["classes"]
    unet, config, ckpt = _model(str(cfg["model_dir"]))
    if unet.config.num_class_embeds - 1 != len(classes):
        raise RebalanceError(
            f"{cfg['model_dir']}: model has {unet.config.num_class_embeds - 1} classes but "
            f"dataset.classes lists {len(classes)}; retrain it with `dvc repro train_diffusion`"
        )
    res = unet.config.sample_size
    size = output_size(ctx, cfg)
    local = cfg["mode"] == "local"
    sources = local_sources(ctx, label) if local else None
    detail = describe(cfg)
    rows = []
    # Fixed blocks of consecutive indices, so an image's batch never depends on how many are asked.
    blocks: dict[int, list[int]] = {}
    for index in indices:
        blocks.setdefault(index // cfg["batch_size"], []).append(index)
    for block in blocks.values():
        seeds = [image_seed(ctx.params["dataset"]["name"], label, METHOD, i) for i in block]
        known = masks = None
        if local:
            srcs = [sources.iloc[i % len(sources)] for i in block]
            originals = [load_array(ctx.raw_dir / s.path, size) for s in srcs]
            full_masks = [
                blob_mask(np.random.default_rng(s), size, cfg["mask"]["blobs"], cfg["mask"]["fraction"])
                for s in seeds
            ]
            known = torch.from_numpy(np.stack([resize(o, res) for o in originals]))
            masks = torch.from_numpy(np.stack([downsample_mask(m, res) for m in full_masks]))
        scheduler = core.sampler(config, cfg["scheduler"])
        out = core.sample(
            unet,
            scheduler,
            [classes.index(label)] * len(block),
            seeds,
            steps=cfg["steps"],
            guidance=cfg["guidance"],
            known=known,
            mask=masks,
        ).numpy()
        for j, (index, seed) in enumerate(zip(block, seeds)):
            image = resize(out[j], size)
            if local:
                image = compose(originals[j], image, full_masks[j])
            path = output_path(METHOD, label, index)
            sha = save_png(image, ctx.out_dir / path)
            src = srcs[j] if local else None
            extra = {"mask_fraction": round(float(full_masks[j].mean()), 4)} if local else {}
            rows.append(
                manifest.row(
                    path=path,
                    split="train",
                    label=label,
                    origin=METHOD,
                    seed=seed,
                    sha256=sha,
                    source=src.path if local else "",
                    root=src.root if local else "",
                    detail={**detail, "resolution": res, "size": size, **extra},
                )
            )
    return rows

"""The `sd` backend of the diffusion method (`sd_inpaint` = `sd` in mode inpaint): local Stable
Diffusion in three modes (`synthesize.diffusion.sd.mode`):
- inpaint: a `StableDiffusionInpaintPipeline` folder inpaints random blob masks on real train
  images of the class; every pixel outside the mask is then restored to the original's bytes;
- img2img (DA-Fusion): a `StableDiffusionImg2ImgPipeline` built from a text-to-image folder noises a
  real train image of the class to `strength` and denoises it toward the class's prompt;
- text2img: a `StableDiffusionPipeline` makes the image from noise (source/root empty; the prompt
  still comes from a train image's attributes, named in `detail.prompt_from`).
Folders load with `local_files_only=True` (nothing is ever downloaded), optionally with LoRA
weights (`sd.lora`, e.g. models/generators/sd_lora from stage train_generator@sd_lora; needs `peft`).
Prompts are built per image, as in the ISIC 2024 SD+LoRA study, by the one structured prompt
builder (rebalance/synth/prompts.py: lesion colour, size/shape, border, skin tone, severity) from
the attributes CSV `synthesize.diffusion.sd.attributes`; stage train_generator@sd_lora trains with
the same prompts.

Settings under `synthesize.diffusion.sd`: mode, model_dir (required), lora, attributes, prompt
(a template with {severity}, {label}, {colour}, {size_shape}, {border}, {skin}), negative_prompt,
resolution (512 for SD 1.5), steps, guidance, strength.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from rebalance.core.errors import RebalanceError
from rebalance.core.images import load_array, save_png
from rebalance.core.progress import progress
from rebalance.synth.base import output_path, synthetic_row
from rebalance.synth.inpaint import blob_mask, compose, downsample_mask, resize
from rebalance.synth.prompts import attributes, prompt_for

if TYPE_CHECKING:
    from rebalance.config.synth import Diffusion, StableDiffusion

METHOD = "diffusion"  # images of this backend belong to the diffusion method

PIPELINES = {  # sd.mode -> diffusers pipeline class
    "inpaint": "StableDiffusionInpaintPipeline",
    "img2img": "StableDiffusionImg2ImgPipeline",
    "text2img": "StableDiffusionPipeline",
}


def mode(cfg: Diffusion) -> str:
    """The SD mode of `synthesize.diffusion` (backend sd_inpaint is mode inpaint)."""
    return "inpaint" if cfg.backend == "sd_inpaint" else cfg.sd.mode


def _require_model_dir(sd: StableDiffusion) -> str:
    if not sd.model_dir:
        raise RebalanceError(
            "params.yaml: synthesize.diffusion.backend sd needs synthesize.diffusion.sd.model_dir "
            "(a local diffusers SD folder: an inpainting one for mode inpaint)"
        )
    return str(sd.model_dir)


def describe(sd: StableDiffusion, how: str = "inpaint") -> dict[str, Any]:
    """What determines an image besides its seed and prompt (`synthesize.diffusion.sd`)."""
    model_dir = _require_model_dir(sd)
    return {
        "checkpoint": _fingerprint(model_dir, str(sd.lora or "")),
        "steps": sd.steps,
        "scheduler": _pipeline(model_dir, str(sd.lora or ""), how).scheduler.__class__.__name__,
        "guidance": sd.guidance,
        "strength": sd.strength,
        "resolution": sd.resolution,
        "prompt_template": sd.prompt,
        "negative_prompt": sd.negative_prompt,
    }


@functools.lru_cache(maxsize=2)
def _fingerprint(model_dir: str, lora: str) -> str:
    """Hash of the pipeline's weight files and configs (and the LoRA file), 16 hex digits."""
    import hashlib

    h = hashlib.sha256()
    for root in filter(None, [model_dir, lora]):
        root_path = Path(root)
        files = sorted(root_path.rglob("*")) if root_path.is_dir() else [root_path]
        for f in files:
            if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt"):
                h.update(str(f.relative_to(root_path) if root_path.is_dir() else f.name).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def _pipeline(model_dir: str, lora: str, how: str = "inpaint"):
    import diffusers

    kind = getattr(diffusers, PIPELINES[how])
    if not Path(model_dir).is_dir():
        raise RebalanceError(
            f"{model_dir}: no such folder; synthesize.diffusion.sd.model_dir must be a local "
            f"diffusers folder for a {PIPELINES[how]} (saved with save_pretrained)"
        )
    try:
        pipe = kind.from_pretrained(
            model_dir,
            local_files_only=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError) as err:
        raise RebalanceError(
            f"{model_dir}: cannot load a {PIPELINES[how]} ({str(err).splitlines()[0]})"
        ) from None
    channels = pipe.unet.config.in_channels
    if (how == "inpaint") != (channels == 9):
        want = "an inpainting folder (9-channel UNet)" if how == "inpaint" else "a text-to-image folder"
        raise RebalanceError(f"{model_dir}: UNet has {channels} input channels; sd.mode {how} needs {want}")
    if lora:
        try:
            pipe.load_lora_weights(lora, local_files_only=True)
        except (ImportError, ValueError, OSError) as err:
            raise RebalanceError(
                f"{lora}: cannot load LoRA weights ({str(err).splitlines()[0]}); "
                "LoRA needs the `peft` package"
            ) from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_of(sampler, label: str, src) -> str:
    """The prompt of the image made from source row `src` (attributes CSV + template)."""
    sd = sampler.cfg.sd
    return prompt_for(attributes(sd.attributes).get(src.path, {}), label, sampler.classes, sd.prompt)


def generate(sampler, label: str, indices: list[int]) -> list[dict]:
    """Images of `label` in the sampler's SD mode, from its sources (a DiffusionSampler's)."""
    ctx, cfg = sampler.ctx, sampler.cfg
    sd, how = cfg.sd, mode(cfg)
    pipe = _pipeline(_require_model_dir(sd), str(sd.lora or ""), how)
    on = sampler.runtime.device  # float16 on CUDA (as SD is usually run), float32 elsewhere
    pipe = pipe.to(on, torch.float16 if on.type == "cuda" else torch.float32)
    detail = sampler.description
    sources = sampler.sources(label)
    size = sampler.output_size
    res = int(sd.resolution)
    rows = []
    for index in progress(indices, f"sd {how} {label}"):
        seed = sampler.ctx.seed(label, METHOD, index)
        src = sources.iloc[index % len(sources)]
        prompt = prompt_of(sampler, label, src)
        common = {
            "prompt": prompt,
            "negative_prompt": sd.negative_prompt or None,
            "num_inference_steps": sd.steps,
            "guidance_scale": sd.guidance,
            "generator": torch.Generator().manual_seed(seed),
            "output_type": "np",
        }
        extra: dict[str, Any] = {"prompt": prompt, "size": size}
        if how == "text2img":
            out = pipe(height=res, width=res, **common).images[0]
            extra["prompt_from"] = src.path
        else:
            original = load_array(ctx.raw_dir / src.path, size, ctx.params.dataset.fit)
            if how == "inpaint":
                mask = blob_mask(np.random.default_rng(seed), size, cfg.mask.blobs, cfg.mask.fraction)
                mask_low = Image.fromarray(downsample_mask(mask, res).astype(np.uint8) * 255)
                image = Image.fromarray(resize(original, res))
                out = pipe(
                    image=image, mask_image=mask_low, height=res, width=res, strength=sd.strength, **common
                )
                extra["mask_fraction"] = round(float(mask.mean()), 4)
            else:
                out = pipe(image=Image.fromarray(resize(original, res)), strength=sd.strength, **common)
            out = out.images[0]
        generated = resize(np.clip(np.rint(out * 255), 0, 255).astype(np.uint8), size)
        image = compose(original, generated, mask) if how == "inpaint" else generated
        path = output_path(METHOD, label, index)
        from_source = how != "text2img"
        sha = save_png(image, ctx.out_dir / path)
        # text2img: made from noise, yet counted in its prompt's source image's duplicate cluster
        made_from, made = (src if from_source else None), {**detail, **extra}
        rows.append(synthetic_row(path, label, METHOD, seed, sha, made, made_from, int(src.cluster)))
    return rows

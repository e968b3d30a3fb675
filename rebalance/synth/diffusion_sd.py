"""The `sd` backend of the diffusion method (`sd_inpaint` = `sd` in mode inpaint): local Stable
Diffusion in three modes (`synthesize.diffusion.sd.mode`):
- inpaint: a `StableDiffusionInpaintPipeline` folder inpaints random blob masks on real train
  images of the class; every pixel outside the mask is then restored to the original's bytes;
- img2img (DA-Fusion): a `StableDiffusionImg2ImgPipeline` built from a text-to-image folder noises a
  real train image of the class to `strength` and denoises it toward the class's prompt;
- text2img: a `StableDiffusionPipeline` makes the image from noise (source/root empty; the prompt
  still comes from a train image's attributes, named in `detail.prompt_from`).
Folders load with `local_files_only=True` (nothing is ever downloaded), optionally with LoRA
weights (`sd.lora`, e.g. models/sd_lora from stage sd_lora; needs `peft`).
Prompts are built per image, as in the ISIC 2024 SD+LoRA study, from attributes in a CSV
(`synthesize.diffusion.sd.attributes`, keyed by the `path` column relative to data/raw): lesion
colour, size/shape, border and surrounding skin tone. Columns used when present:
`lesion_colour`/`lesion_color`, `size_shape`, `border`, `skin_tone` (text, or a number 0..1 from
light to dark, as the demo's labels.csv), and lesion counts `papules`/`pustules`/`nodules` (the
demo's), from which colour, size/shape and border are derived. `prompt_for` is the one prompt
builder: stage sd_lora trains with the same prompts.

Settings under `synthesize.diffusion.sd`: mode, model_dir (required), lora, attributes, prompt
(a template with {severity}, {label}, {colour}, {size_shape}, {border}, {skin}), negative_prompt,
resolution (512 for SD 1.5), steps, guidance, strength.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from rebalance.core import manifest, paths
from rebalance.core.errors import RebalanceError
from rebalance.core.images import load_array, save_png
from rebalance.core.progress import progress
from rebalance.synth.base import output_path
from rebalance.synth.inpaint import blob_mask, compose, downsample_mask, resize

METHOD = "diffusion"  # images of this backend belong to the diffusion method

SKIN_WORDS = ["very light", "light", "light-medium", "medium", "brown", "dark brown"]  # Fitzpatrick I..VI
SEVERITY_WORDS = ["clear to almost clear", "mild", "moderate", "severe", "very severe"]
KIND_WORDS = {  # dominant lesion kind -> (colour, size/shape, border)
    "papules": ("red", "small raised round papules", "well-defined"),
    "pustules": ("yellow-white pus-filled with red rims", "small dome-shaped pustules", "well-defined"),
    "nodules": ("deep red to purple", "large deep nodules", "diffuse"),
}


PIPELINES = {  # sd.mode -> diffusers pipeline class
    "inpaint": "StableDiffusionInpaintPipeline",
    "img2img": "StableDiffusionImg2ImgPipeline",
    "text2img": "StableDiffusionPipeline",
}


def mode(cfg: dict) -> str:
    """The SD mode of `synthesize.diffusion` (backend sd_inpaint is mode inpaint)."""
    return "inpaint" if cfg["backend"] == "sd_inpaint" else cfg["sd"]["mode"]


def _require_model_dir(sd: dict) -> str:
    if not sd["model_dir"]:
        raise RebalanceError(
            "params.yaml: synthesize.diffusion.backend sd needs synthesize.diffusion.sd.model_dir "
            "(a local diffusers SD folder: an inpainting one for mode inpaint)"
        )
    return str(sd["model_dir"])


def describe(sd: dict, how: str = "inpaint") -> dict[str, Any]:
    """What determines an image besides its seed and prompt (`synthesize.diffusion.sd`)."""
    model_dir = _require_model_dir(sd)
    return {
        "checkpoint": _fingerprint(model_dir, str(sd["lora"] or "")),
        "steps": sd["steps"],
        "scheduler": _pipeline(model_dir, str(sd["lora"] or ""), how).scheduler.__class__.__name__,
        "guidance": sd["guidance"],
        "strength": sd["strength"],
        "resolution": sd["resolution"],
        "prompt_template": sd["prompt"],
        "negative_prompt": sd["negative_prompt"],
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


def skin_word(value: Any) -> str:
    """Skin tone as words: a number 0..1 (light..dark) maps onto six Fitzpatrick-like steps."""
    try:
        tone = float(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") and not pd.isna(value) else "natural"
    return SKIN_WORDS[min(len(SKIN_WORDS) - 1, max(0, int(tone * len(SKIN_WORDS))))]


def prompt_for(attrs: dict[str, Any], label: str, classes: list[str], template: str) -> str:
    """The seed-003 style prompt for one image: colour, size/shape, border, skin tone, severity."""
    grade = classes.index(label) / max(1, len(classes) - 1)
    severity = SEVERITY_WORDS[round(grade * (len(SEVERITY_WORDS) - 2)) + (1 if grade > 0 else 0)]
    counts = {k: float(attrs[k]) for k in KIND_WORDS if k in attrs and str(attrs[k]) not in ("", "nan")}
    colour, size_shape, border = (
        KIND_WORDS[max(counts, key=counts.get)]
        if any(counts.values())
        else ("red", "small papules", "well-defined")
    )
    words = {
        "severity": severity,
        "label": label,
        "skin": skin_word(attrs.get("skin_tone")),
        "colour": attrs.get("lesion_colour") or attrs.get("lesion_color") or colour,
        "size_shape": attrs.get("size_shape") or size_shape,
        "border": attrs.get("border") or border,
    }
    return template.format(**{k: str(v) for k, v in words.items()})


@functools.lru_cache(maxsize=4)
def attributes(path: str | None) -> dict[str, dict]:
    if not path:
        return {}
    if not Path(path).exists() and Path(path) == paths.LABELS:
        return {}  # a source without per-image attributes: prompts from the class alone
    if not Path(path).exists():
        raise RebalanceError(f"{path}: attributes CSV not found (synthesize.diffusion.sd.attributes)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "path" not in table.columns:
        raise RebalanceError(f"{path}: attributes CSV needs a `path` column (relative to data/raw)")
    return {r["path"]: r for r in table.to_dict("records")}


def prompt_of(sampler, label: str, src) -> str:
    """The prompt of the image made from source row `src` (attributes CSV + template)."""
    sd = sampler.cfg["sd"]
    return prompt_for(attributes(sd["attributes"]).get(src.path, {}), label, sampler.classes, sd["prompt"])


def generate(sampler, label: str, indices: list[int]) -> list[dict]:
    """Images of `label` in the sampler's SD mode, from its sources (a DiffusionSampler's)."""
    ctx, cfg = sampler.ctx, sampler.cfg
    sd, how = cfg["sd"], mode(cfg)
    pipe = _pipeline(_require_model_dir(sd), str(sd["lora"] or ""), how)
    on = sampler.runtime.device  # float16 on CUDA (as SD is usually run), float32 elsewhere
    pipe = pipe.to(on, torch.float16 if on.type == "cuda" else torch.float32)
    detail = sampler.description
    sources = sampler.sources(label)
    size = sampler.output_size
    res = int(sd["resolution"])
    rows = []
    for index in progress(indices, f"sd {how} {label}"):
        seed = sampler.ctx.seed(label, METHOD, index)
        src = sources.iloc[index % len(sources)]
        prompt = prompt_of(sampler, label, src)
        common = {
            "prompt": prompt,
            "negative_prompt": sd["negative_prompt"] or None,
            "num_inference_steps": sd["steps"],
            "guidance_scale": sd["guidance"],
            "generator": torch.Generator().manual_seed(seed),
            "output_type": "np",
        }
        extra: dict[str, Any] = {"prompt": prompt, "size": size}
        if how == "text2img":
            out = pipe(height=res, width=res, **common).images[0]
            extra["prompt_from"] = src.path
        else:
            original = load_array(ctx.raw_dir / src.path, size)
            if how == "inpaint":
                mask = blob_mask(
                    np.random.default_rng(seed), size, cfg["mask"]["blobs"], cfg["mask"]["fraction"]
                )
                mask_low = Image.fromarray(downsample_mask(mask, res).astype(np.uint8) * 255)
                image = Image.fromarray(resize(original, res))
                out = pipe(
                    image=image, mask_image=mask_low, height=res, width=res, strength=sd["strength"], **common
                )
                extra["mask_fraction"] = round(float(mask.mean()), 4)
            else:
                out = pipe(image=Image.fromarray(resize(original, res)), strength=sd["strength"], **common)
            out = out.images[0]
        generated = resize(np.clip(np.rint(out * 255), 0, 255).astype(np.uint8), size)
        image = compose(original, generated, mask) if how == "inpaint" else generated
        path = output_path(METHOD, label, index)
        from_source = how != "text2img"
        rows.append(
            manifest.row(
                path=path,
                split="train",
                label=label,
                origin=METHOD,
                seed=seed,
                sha256=save_png(image, ctx.out_dir / path),
                source=src.path if from_source else "",
                root=src.root if from_source else "",
                cluster=int(src.cluster),
                detail={**detail, **extra},
            )  # fmt: skip
        )
    return rows

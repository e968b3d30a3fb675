"""The model card of a trained generator: `README.md` beside its weights, as diffusers' training
scripts write one, and the sample sheet `samples.png` it shows.

Stage train_generator@<key> calls `draw_sheet` with images its trained model has just drawn (one
row per class it generates, `PER_CLASS` each, from seeds derived from `generators.<key>.seed`, with
a short fixed sampler schedule that no `synthesize.*` param changes), then `write`: Hugging Face
front matter (library_name, base_model only for a fine-tuned base, pipeline_tag, tags) and what
the model is, the training-set record (rebalance/synth/provenance.py), how it was trained, its
params, the sheet, intended use and limitations, and where its images' measured quality is.

A sample sheet of a Stable Diffusion LoRA is drawn only where it is cheap: on a GPU, or on the CPU
when `sd_cpu_seconds` (calibrated on SD 1.5's UNet, 860M parameters: 0.36 s per image and UNet call
at 128 px on 2 cores) stays within `SHEET_BUDGET_S`; the card says when none was drawn.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFont

from rebalance.core import atomic
from rebalance.synth.provenance import RECORD

CARD = "README.md"
SHEET = "samples.png"
SHEET_STEPS = 20  # DDIM steps of a diffusion model's sample sheet
PER_CLASS = 6  # images per row of the sheet
SD_PER_CLASS = 4
SD_GUIDANCE = 7.5  # classifier-free guidance of an SD LoRA's sheet (2 UNet calls per image and step)
SHEET_BUDGET_S = 10.0  # the most a sheet may cost on a 2-core CPU
# SD sampling cost on a 2-core CPU, measured: SD 1.5's UNet (859.5M parameters) on 8 latents of
# 16 x 16 took 2.9 s a call, i.e. this many seconds per parameter, latent pixel and image; plus a
# fixed cost per UNet call
SD_SECONDS_PER_PARAM_PIXEL = 1.65e-12
SD_SECONDS_PER_CALL = 0.02
TILE_MIN, TILE_MAX = 64, 128  # a sheet image's side: small images enlarged (nearest), large ones shrunk
PAD = 4  # pixels around and between the sheet's images
LABEL_H = 14  # the strip above each row that names its class
QUALITY_JSON = "metrics/synthesis_quality.json"
DATASET_CARD = "data/fused/README.md"


@dataclass(frozen=True)
class Kind:
    """What the card says of one kind of generator (a key of params `generators`)."""

    title: str
    library: str  # library_name
    pipeline_tag: str
    tags: tuple[str, ...]  # besides rebalance, synthetic-data, medical-imaging and the key
    method: str  # the synthesis method that samples it (metrics/synthesis_quality.json per_method)
    uses: str  # how stage synthesize samples it
    load: str  # Python that loads it from this folder


KINDS = {
    "diffusion": Kind(
        title="Class-conditional pixel diffusion UNet",
        library="diffusers",
        pipeline_tag="unconditional-image-generation",
        tags=("diffusion", "diffusers", "class-conditional"),
        method="diffusion",
        uses="method `diffusion` (`synthesize.diffusion.backend: unet`, `model_dir` this folder)",
        load=(
            "from rebalance.synth import diffusion_core\n"
            "unet, scheduler_config = diffusion_core.load(folder)  # diffusers UNet2DModel + DDPM config\n"
            "images = diffusion_core.sample(unet, diffusion_core.sampler(scheduler_config, 'ddim'),\n"
            "                               labels=[0, 1], seeds=[0, 1], steps=20)"
        ),
    ),
    "gan": Kind(
        title="Class-conditional GAN generator",
        library="pytorch",
        pipeline_tag="unconditional-image-generation",
        tags=("gan", "class-conditional"),
        method="gan",
        uses="method `gan` (`synthesize.gan.model_dir` this folder)",
        load=(
            "from rebalance.synth import gan_core\n"
            "generator = gan_core.load(folder)  # generator.pt + config.json\n"
            "images = gan_core.sample(generator, labels=[0, 1], seeds=[0, 1])"
        ),
    ),
    "sd_lora": Kind(
        title="Stable Diffusion LoRA",
        library="diffusers",
        pipeline_tag="text-to-image",
        tags=("lora", "stable-diffusion", "text-to-image"),
        method="diffusion",
        uses=(
            "method `diffusion` with `synthesize.diffusion.backend: sd` (or `sd_inpaint`) and "
            "`synthesize.diffusion.sd.lora` this folder"
        ),
        load=(
            "from diffusers import StableDiffusionPipeline\n"
            "pipe = StableDiffusionPipeline.from_pretrained(base_model_folder, local_files_only=True)\n"
            "pipe.load_lora_weights(folder)  # pytorch_lora_weights.safetensors"
        ),
    ),
}


@dataclass(frozen=True)
class Sheet:
    """A drawn sample sheet: its row labels, images per row, and how they were drawn."""

    labels: tuple[str, ...]
    per_class: int
    how: str
    file: str = SHEET


def sheet_seeds(seed: int, rows: int, per_class: int) -> list[list[int]]:
    """The seed of every sheet image, row by row: determined by `seed` (generators.<key>.seed)."""
    return [
        [
            int(hashlib.sha256(f"samples:{seed}:{r}:{i}".encode()).hexdigest()[:8], 16)
            for i in range(per_class)
        ]
        for r in range(rows)
    ]


def tile_size(resolution: int) -> int:
    """The side of one image on the sheet: enlarged by a whole factor to at least TILE_MIN, or
    shrunk to TILE_MAX."""
    if resolution >= TILE_MIN:
        return min(resolution, TILE_MAX)
    return resolution * math.ceil(TILE_MIN / resolution)


def sheet_size(rows: int, per_class: int, resolution: int) -> tuple[int, int]:
    """(width, height) of a sheet: a label strip above each row of `per_class` images."""
    tile = tile_size(resolution)
    return PAD + per_class * (tile + PAD), PAD + rows * (LABEL_H + tile + PAD)


def draw_sheet(folder: Path, rows: Mapping[str, Any], how: str) -> Sheet:
    """Write folder/samples.png: one labelled row per class of `rows` (label -> N x H x W x 3
    uint8 images, numpy or torch, all of one square size). Returns what the card says of it."""
    blocks = {label: np.asarray(images, dtype=np.uint8) for label, images in rows.items()}
    per_class = max(len(b) for b in blocks.values())
    resolution = next(iter(blocks.values())).shape[1]
    tile = tile_size(resolution)
    canvas = Image.new("RGB", sheet_size(len(blocks), per_class, resolution), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for r, (label, images) in enumerate(blocks.items()):
        top = PAD + r * (LABEL_H + tile + PAD)
        draw.text((PAD, top), label, fill="black", font=font)
        for i, image in enumerate(images):
            resample = Image.NEAREST if tile >= image.shape[0] else Image.LANCZOS
            picture = Image.fromarray(image).resize((tile, tile), resample)
            canvas.paste(picture, (PAD + i * (tile + PAD), top + LABEL_H))
    atomic.write_bytes(Path(folder) / SHEET, _png(canvas))
    return Sheet(labels=tuple(blocks), per_class=per_class, how=how)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def sd_cpu_seconds(unet_parameters: int, latent_side: int, images: int, steps: int, calls: int = 2) -> float:
    """Estimated seconds to sample `images` with an SD UNet on a 2-core CPU (`calls` UNet
    evaluations per image and step: 2 with classifier-free guidance); the VAE comes on top."""
    per_step = SD_SECONDS_PER_PARAM_PIXEL * unet_parameters * latent_side**2 * images * calls
    return steps * (per_step + SD_SECONDS_PER_CALL)


def write(
    folder: Path,
    *,
    key: str,
    dataset: str,
    classes: Mapping[str, int],
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    architecture: Sequence[str],
    parameters: int,
    base_model: str | None = None,
    sheet: Sheet | str,
) -> Path:
    """Write folder/README.md, the model card of the generator `key` saved in `folder`.

    classes: the training images per class; params: `generators.<key>`; metrics: what the stage
    writes to metrics/<key>_train.json; architecture: lines on what the model is; parameters: its
    (trained) parameter count; base_model: the fine-tuned base's name (None: trained from scratch);
    sheet: the drawn sample sheet, or why none was drawn. The training-set record is read from
    folder/training_set.json (written first)."""
    kind = KINDS[key]
    folder = Path(folder)
    record = json.loads((folder / RECORD).read_text())
    front = {"library_name": kind.library}
    if base_model:
        front["base_model"] = base_model
    front["pipeline_tag"] = kind.pipeline_tag
    front["tags"] = list(dict.fromkeys(["rebalance", "synthetic-data", "medical-imaging", key, *kind.tags]))
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", ""]
    lines += [f"# {kind.title} for `{dataset}`", ""]
    lines += [
        f"Trained by stage `train_generator@{key}` of rebalance on the train-split images of the dataset "
        f"`{dataset}` (class{'es' if len(classes) > 1 else ''}: {', '.join(classes)}), to generate "
        f"synthetic train images that balance its classes. Stage synthesize samples it through {kind.uses}.",
    ]
    lines += _model(kind, architecture, parameters, base_model, params, metrics)
    lines += _training_data(record, classes)
    lines += _training(key, params, metrics)
    lines += ["", "## Parameters", "", f"`generators.{key}` in params.yaml:", "", "```yaml"]
    lines += [yaml.safe_dump({"generators": {key: _plain(params)}}, sort_keys=False).strip(), "```"]
    lines += _samples(sheet)
    lines += _use(dataset)
    lines += _quality(kind)
    card = folder / CARD
    atomic.write_text(card, "\n".join(lines) + "\n")
    return card


def _model(kind, architecture, parameters, base_model, params, metrics) -> list[str]:
    lines = ["", "## Model", ""]
    lines += [f"- {line}" for line in architecture]
    lines.append(f"- Parameters: {parameters:,}")
    if base_model:
        where = params.get("model_dir")
        lines.append(
            f"- Base model: `{base_model}` (the local Stable Diffusion folder `{where}`; its weights are "
            "not in this folder, only the adapters)"
        )
    else:
        lines.append("- Base model: none, trained from scratch")
    if metrics.get("checkpoint"):
        lines.append(f"- Checkpoint: `{metrics['checkpoint']}` (sha256 of the weights, first 16 hex digits)")
    lines += ["", "Load it (`folder` is this folder):", "", "```python", kind.load, "```"]
    return lines


def _training_data(record: Mapping[str, Any], classes: Mapping[str, int]) -> list[str]:
    lines = ["", "## Training data", ""]
    lines += [
        f"The record `{RECORD}` beside the weights lists the sha256 of every training image. Its "
        "hash is the sha256 over the sorted `path:sha256` lines of the training images (paths "
        "relative to data/raw; rebalance/synth/provenance.py):",
        "",
        f"- Training-set sha256: `{record['manifest_sha256']}`",
        f"- Images: {record['n']:,}",
        "",
        "| class | images |",
        "| --- | ---: |",
        *[f"| {label} | {n:,} |" for label, n in classes.items()],
        "",
        "It holds train-split images only, none of the val or test splits: stage synthesize compares "
        "the record with the real val/test images and refuses a generator that saw one.",
    ]
    return lines


def _training(key: str, params: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    phases = [metrics[p] for p in ("phase1", "phase2") if isinstance(metrics.get(p), Mapping)]
    steps = metrics.get("steps")
    if steps is None and phases:
        steps = " + ".join(
            f"{p['steps']:,} ({name})"
            for p, name in zip(phases, ("phase 1: UNet", "phase 2: UNet + text encoder"))
        )
    seconds = metrics.get("seconds", round(sum(p["seconds"] for p in phases), 1) if phases else None)
    device = metrics.get("device")
    if device and metrics.get("device_name") not in (None, device):
        device = f"{device} ({metrics['device_name']})"
    if device and metrics.get("autocast"):
        device = f"{device}, {metrics['autocast']} autocast"
    losses = {k: metrics[k] for k in ("loss", "d_loss", "g_loss") if k in metrics}
    losses |= {f"loss (phase {i + 1})": p["loss"] for i, p in enumerate(phases) if "loss" in p}
    rows = [
        ("steps", steps),
        ("batch size", params.get("batch_size")),
        ("learning rate", params.get("lr")),
        ("seed", params.get("seed")),
        ("resolution", metrics.get("resolution", params.get("resolution"))),
        ("seconds", seconds),
        ("device", device),
        ("processes", metrics.get("processes")),
        *((f"final {name}", value) for name, value in losses.items()),
    ]
    lines = ["", "## Training", ""]
    lines += [
        "| | |",
        "| --- | --- |",
        *[f"| {name} | {value} |" for name, value in rows if value is not None],
    ]
    lines += ["", f"The full report: `metrics/{key}_train.json`."]
    return lines


def _samples(sheet: Sheet | str) -> list[str]:
    lines = ["", "## Samples", ""]
    if isinstance(sheet, str):
        return [*lines, f"No sample sheet was drawn: {sheet}."]
    return [
        *lines,
        f"![samples]({sheet.file})",
        "",
        f"`{sheet.file}`: drawn by this model at the end of training, one row per class "
        f"({', '.join(sheet.labels)}), {sheet.per_class} images each, {sheet.how}. The seeds derive "
        "from the training seed, so the same model draws the same sheet. Not curated, not filtered.",
    ]


def _use(dataset: str) -> list[str]:
    return [
        "",
        "## Intended use",
        "",
        f"Research augmentation of the dataset `{dataset}`: synthetic train images that rebalance its "
        "classes, for training and comparing classifiers against the real-only baselines. The images "
        "are not patients and not evidence about any patient.",
        "",
        "## Limitations",
        "",
        "- Not for diagnosis, and not a medical device: neither the model nor its images may inform a "
        "clinical decision.",
        "- Its images need clinician review before any use beyond this research (rebalance's review "
        "app records the decisions in reviews/; rejected images are never published).",
        "- It learnt from the train split only, a small set: it may copy train images, miss rare "
        "presentations, and carry the dataset's biases (skin tones, devices, sites).",
    ]


def _quality(kind: Kind) -> list[str]:
    return [
        "",
        "## Quality",
        "",
        "This card holds no quality measure. The measured quality of this model's images is in the "
        f"dataset card `{DATASET_CARD}` (its section on the synthetic images' quality) and in "
        f"`{QUALITY_JSON}` under `per_method.{kind.method}` (per class: intended-class rate, "
        "precision, recall, Fréchet distance, real-vs-synthetic AUC, near-copies), both written after "
        f"stage synthesize has sampled this model (stage assess) when `synthesize.methods` names "
        f"`{kind.method}`.",
    ]


def _plain(value: Any) -> Any:
    """Params as plain YAML types (paths and tuples as strings and lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)

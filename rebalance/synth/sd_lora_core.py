"""LoRA fine-tuning of a local Stable Diffusion folder (the ISIC 2024 SD+LoRA study), with peft and diffusers'
training conventions (as diffusers' train_text_to_image_lora.py).

Phase 1 trains LoRA adapters on the UNet's attention projections (to_q/k/v/out) only; phase 2
continues with adapters on the text encoder too (q/k/v/out_proj). The base weights stay frozen.
Each step: the VAE encodes a batch of train images (scaled by the VAE's scaling factor), noise is
added at random timesteps, and the UNet predicts the noise (or velocity, as the scheduler's
prediction_type says) conditioned on the image's structured prompt; MSE loss, AdamW. Batches,
noise and timesteps are drawn on the CPU from the seed. The result is saved with
`StableDiffusionPipeline.save_lora_weights` (pytorch_lora_weights.safetensors), which every SD
pipeline's `load_lora_weights` reads: text-to-image, img2img and inpainting alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rebalance.core import ranks
from rebalance.core.device import CPU, Runtime
from rebalance.core.errors import RebalanceError
from rebalance.core.images import load_array
from rebalance.core.progress import progress

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
WEIGHTS = "pytorch_lora_weights.safetensors"


def load_base(model_dir: str):
    """(pipeline, noise scheduler) of a local text-to-image SD folder; nothing is downloaded."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    if not model_dir or not Path(model_dir).is_dir():
        raise RebalanceError(
            f"{model_dir}: generators.sd_lora.model_dir must be a local StableDiffusionPipeline folder "
            "(saved with save_pretrained; nothing is downloaded)"
        )
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            model_dir, local_files_only=True, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )  # fmt: skip
        noise = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler", local_files_only=True)
    except (OSError, ValueError) as err:
        raise RebalanceError(f"{model_dir}: cannot load a SD pipeline ({str(err).splitlines()[0]})") from None
    if pipe.unet.config.in_channels != 4:
        raise RebalanceError(
            f"{model_dir}: UNet has {pipe.unet.config.in_channels} input channels (an inpainting model?); "
            "LoRA training needs a text-to-image SD folder (4 channels)"
        )
    return pipe, noise


def train(
    pipe,
    noise_scheduler,
    files: list[Path],
    prompts: list[str],
    *,
    phase1_steps: int,
    phase2_steps: int,
    rank: int,
    lr: float,
    resolution: int,
    batch_size: int,
    seed: int,
    fit: str,
    runtime: Runtime = CPU,
    log: Callable[[str], None] = print,
    world: ranks.World = ranks.ALONE,
) -> dict:
    """Add LoRA adapters to pipe.unet (and pipe.text_encoder in phase 2) and train them in place,
    on the images `files` brought to resolution x resolution by `fit` (dataset.fit).

    Among processes launched by accelerate (`world`): data-parallel. Every process draws the
    global batch's random numbers (images, noise, timesteps) from the seed, takes its part
    (`world.slice`), and the adapters' gradients are averaged over the processes
    (`world.average_gradients`), so the adapters stay the same in every process."""
    from peft import LoraConfig

    device = runtime.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    unet, text_encoder, vae, tokenizer = pipe.unet, pipe.text_encoder, pipe.vae, pipe.tokenizer
    for model in (unet, text_encoder, vae):
        model.requires_grad_(False).to(device)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=UNET_TARGETS)
    )
    pixels = torch.from_numpy(np.stack([load_array(f, resolution, fit) for f in files])).permute(0, 3, 1, 2)
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids  # fmt: skip
    summary: dict = {"images": len(files), "rank": rank}
    part = torch.tensor(world.slice(list(range(batch_size))))  # this process's positions in every batch
    for phase, steps in ((1, phase1_steps), (2, phase2_steps)):
        if steps == 0:
            continue
        if phase == 2:
            text_encoder.add_adapter(
                LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TEXT_TARGETS)
            )
        models = [unet] if phase == 1 else [unet, text_encoder]
        params = [p for m in models for p in m.parameters() if p.requires_grad]
        for p in params:
            p.data = p.data.float()  # trainable LoRA weights in float32 (base may be fp16)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
        start, running = time.perf_counter(), None
        for _ in progress(range(steps), f"sd_lora phase {phase}", unit="step"):
            idx = torch.randint(0, len(files), (batch_size,), generator=gen)[part]
            x = pixels[idx].float().div(127.5).sub(1.0).to(device)
            with torch.no_grad(), runtime.autocast():
                latents = vae.encode(x).latent_dist.mean.float() * vae.config.scaling_factor
            noise = torch.randn((batch_size, *latents.shape[1:]), generator=gen)[part].to(device)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch_size,), generator=gen)
            t = t[part].to(device)
            with runtime.autocast():
                noisy = noise_scheduler.add_noise(latents, noise, t)
                hidden = text_encoder(ids[idx].to(device))[0]
                pred = unet(noisy, t, encoder_hidden_states=hidden).sample
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(latents, noise, t)
            else:
                target = noise
            loss = torch.nn.functional.mse_loss(pred.float(), target.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            world.average_gradients(params)
            opt.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        seconds = time.perf_counter() - start
        summary[f"phase{phase}"] = {
            "steps": steps, "loss": round(float(running), 5), "seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / steps, 4),
        }  # fmt: skip
        log(f"sd_lora: phase {phase} ({'UNet' if phase == 1 else 'UNet + text encoder'}): {steps} steps, "
            f"loss {running:.4f}, {seconds / steps:.3f} s/step")  # fmt: skip
    return summary


def save(pipe, folder: Path, text_encoder_trained: bool) -> Path:
    """Save the adapters as pytorch_lora_weights.safetensors (diffusers' LoRA format)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    text_layers = (
        convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.text_encoder))
        if text_encoder_trained
        else None
    )
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=unet_layers, text_encoder_lora_layers=text_layers, safe_serialization=True
    )
    return Path(folder) / WEIGHTS

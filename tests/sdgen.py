"""Tiny randomly initialised Stable Diffusion pipelines the tests build and save (CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def tiny_sd_pipeline(folder: Path, inpaint: bool = True) -> Path:
    """A randomly initialised SD pipeline, saved under folder/sd: an inpainting one (9-channel
    UNet) or a text-to-image one (4 channels); the same seed gives both the same text encoder,
    VAE and attention shapes, so one LoRA fits both. Nothing is downloaded."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["<|startoftext|>", "<|endoftext|>", "!"] + letters + [c + "</w>" for c in letters]
    (folder / "tok").mkdir(parents=True)
    (folder / "tok" / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "tok" / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(folder / "tok" / "vocab.json"), str(folder / "tok" / "merges.txt"), model_max_length=16
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(vocab),
            max_position_embeddings=16,
            projection_dim=32,
        )
    )
    unet = UNet2DConditionModel(
        block_out_channels=(32, 32),
        layers_per_block=1,
        sample_size=8,
        in_channels=9 if inpaint else 4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8,
        sample_size=16,
    )
    kind = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = kind(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "sd")
    return folder / "sd"

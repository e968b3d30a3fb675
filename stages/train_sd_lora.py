"""Stage train_generator@sd_lora: fine-tune a local Stable Diffusion folder with LoRA on train-split
real images (as the ISIC 2024 SD+LoRA study: phase 1 UNet only, phase 2 UNet + text encoder;
rebalance/synth/sd_lora_core.py).

Prompts come from the one structured prompt builder (rebalance/synth/prompts.py: lesion colour,
size/shape, border, skin tone, severity) over `synthesize.diffusion.sd.attributes` and its
template. Trains on every class (or `generators.sd_lora.classes`). Writes models/generators/sd_lora
(pytorch_lora_weights.safetensors, training_set.json, prompts.json, the model card README.md and,
where sampling is cheap, its sample sheet samples.png: rebalance/synth/model_card.py) and
metrics/sd_lora_train.json (loss and seconds per step per phase). Set
`synthesize.diffusion.sd.lora: models/generators/sd_lora` to generate with it. The stage exists only
while `generators` names sd_lora (no SD weights ship with the project: `generators.sd_lora.model_dir`
names a local folder).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rebalance import config
from rebalance.config.synth import SdLora
from rebalance.core import atomic, device, manifest, paths, ranks
from rebalance.core.device import Runtime
from rebalance.core.errors import RebalanceError, run_main
from rebalance.synth import model_card, prompts, provenance, sd_lora_core


def main() -> None:
    params = config.load()
    cfg, sd = params.generators.sd_lora, params.synthesize.diffusion.sd
    if cfg is None:
        raise RebalanceError(
            "train_sd_lora: generators.sd_lora is not in params.yaml; add `sd_lora: {model_dir: ...}`"
        )
    if cfg.processes > 1 and not ranks.launched():  # dvc repro: launch the data-parallel processes
        sys.exit(ranks.relaunch("stages.train_sd_lora", cfg.processes))
    runtime = device.runtime(params.compute)
    world = ranks.World.current(cpu=runtime.device.type == "cpu")
    classes = params.dataset.classes
    chosen = cfg.classes or classes
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    rows = real[(real.split == "train") & real.label.isin(chosen)].sort_values("path")
    if rows.empty:
        raise RebalanceError(
            f"train_sd_lora: no train images of {', '.join(chosen)}; set generators.sd_lora.classes"
        )
    attrs = prompts.attributes(sd.attributes)
    texts = [
        prompts.prompt_for(attrs.get(p, {}), c, classes, sd.prompt) for p, c in zip(rows.path, rows.label)
    ]
    pipe, noise = sd_lora_core.load_base(cfg.model_dir)
    summary = sd_lora_core.train(
        pipe, noise, [paths.RAW / p for p in rows.path], texts,
        phase1_steps=cfg.phase1_steps, phase2_steps=cfg.phase2_steps, rank=cfg.rank, lr=cfg.lr,
        resolution=cfg.resolution, batch_size=cfg.batch_size, seed=cfg.seed, fit=params.dataset.fit,
        runtime=runtime, world=world,
    )  # fmt: skip
    if not world.main:  # every process holds the same adapters; the first one saves them
        return
    report = {"classes": chosen, **summary, "base": cfg.model_dir}
    report |= runtime.describe() | {"processes": world.size}
    with atomic.output_dir(paths.SD_LORA) as out:
        sd_lora_core.save(pipe, out, text_encoder_trained=cfg.phase2_steps > 0)
        provenance.write_record(out, rows)  # which images it saw: synthesize checks it
        atomic.write_json(out / "prompts.json", dict(zip(rows.path, texts)))
        labels = list(rows.label)
        firsts = {c: texts[labels.index(c)] for c in chosen if c in labels}  # a class's first image's
        start = time.perf_counter()
        sheet = sample_sheet(out, pipe, firsts, cfg, runtime)
        print(f"train_sd_lora: sample sheet in {time.perf_counter() - start:.1f} s", flush=True)
        adapters = [p for m in (pipe.unet, pipe.text_encoder) for p in m.parameters() if p.requires_grad]
        model_card.write(
            out, key="sd_lora", dataset=params.dataset.name,
            classes={c: int((rows.label == c).sum()) for c in chosen},
            params=cfg.model_dump(mode="json"), metrics=report, parameters=sum(p.numel() for p in adapters),
            base_model=Path(cfg.model_dir).name,
            architecture=[
                f"LoRA adapters (rank {cfg.rank}) on the attention projections of a Stable Diffusion "
                f"UNet ({', '.join(sd_lora_core.UNET_TARGETS)})"
                + (f" and text encoder ({', '.join(sd_lora_core.TEXT_TARGETS)})" if cfg.phase2_steps else ""),
                "Phase 1 trains the UNet's adapters, phase 2 the UNet's and the text encoder's "
                f"(steps: {cfg.phase1_steps} and {cfg.phase2_steps}), at {cfg.resolution} px; the base "
                "weights stay frozen",
                "Prompts: one structured prompt per training image (rebalance/synth/prompts.py), listed "
                "in `prompts.json`",
                f"Saved in diffusers' LoRA format (`{sd_lora_core.WEIGHTS}`); parameters below: the "
                "adapters'",
            ],
            sheet=sheet,
        )  # fmt: skip
    atomic.write_json(paths.SD_LORA_TRAIN, report)


def sample_sheet(
    out: Path, pipe, class_prompts: dict[str, str], cfg: SdLora, runtime: Runtime
) -> model_card.Sheet | str:
    """The model card's samples.png, drawn by the fine-tuned pipeline (DDIM, a short fixed
    schedule, one prompt per class) where that is cheap: on a GPU, or on a CPU when the estimate
    stays within model_card.SHEET_BUDGET_S; else why none was drawn."""
    import torch
    from diffusers import DDIMScheduler

    per_class, steps, res = model_card.SD_PER_CLASS, model_card.SHEET_STEPS, cfg.resolution
    side = res // pipe.vae_scale_factor
    unet_parameters = sum(p.numel() for p in pipe.unet.parameters())
    cost = model_card.sd_cpu_seconds(unet_parameters, side, per_class * len(class_prompts), steps)
    if runtime.device.type == "cpu" and cost > model_card.SHEET_BUDGET_S:
        n, guidance = per_class * len(class_prompts), model_card.SD_GUIDANCE
        return (
            f"sampling {n} images ({steps} steps, guidance {guidance}, {res} px) with this "
            f"{unet_parameters / 1e6:,.0f}M-parameter UNet on the CPU would take about "
            f"{cost:,.0f} s on 2 cores (drawn when under {model_card.SHEET_BUDGET_S:.0f} s, or on a GPU)"
        )
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    seeds = model_card.sheet_seeds(cfg.seed, len(class_prompts), per_class)
    rows = {}
    for (label, prompt), row_seeds in zip(class_prompts.items(), seeds):
        with runtime.autocast():
            images = pipe(
                prompt=[prompt] * per_class, height=res, width=res, num_inference_steps=steps,
                guidance_scale=model_card.SD_GUIDANCE, output_type="np",
                generator=[torch.Generator().manual_seed(s) for s in row_seeds],
            ).images  # fmt: skip
        rows[label] = (images * 255).round().clip(0, 255).astype("uint8")
    how = f"DDIM with {steps} steps, guidance {model_card.SD_GUIDANCE}, {res} px, prompts: " + "; ".join(
        f'{label}: "{prompt}"' for label, prompt in class_prompts.items()
    )
    return model_card.draw_sheet(out, rows, how)


if __name__ == "__main__":
    run_main(main)

"""Stage train_generator@sd_lora: fine-tune a local Stable Diffusion folder with LoRA on train-split
real images (as the ISIC 2024 SD+LoRA study: phase 1 UNet only, phase 2 UNet + text encoder;
rebalance/synth/sd_lora_core.py).

Prompts come from the one structured prompt builder (rebalance/synth/prompts.py: lesion colour,
size/shape, border, skin tone, severity) over `synthesize.diffusion.sd.attributes` and its
template. Trains on every class (or `generators.sd_lora.classes`). Writes models/generators/sd_lora
(pytorch_lora_weights.safetensors, training_set.json, prompts.json) and metrics/sd_lora_train.json
(loss and seconds per step per phase). Set `synthesize.diffusion.sd.lora: models/generators/sd_lora`
to generate with it. The stage exists only while `generators` names sd_lora (no SD weights ship
with the project: `generators.sd_lora.model_dir` names a local folder).
"""

from __future__ import annotations

import sys

from rebalance import config
from rebalance.core import atomic, device, manifest, paths, ranks
from rebalance.core.errors import RebalanceError, run_main
from rebalance.synth import prompts, provenance, sd_lora_core


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
    with atomic.output_dir(paths.SD_LORA) as out:
        sd_lora_core.save(pipe, out, text_encoder_trained=cfg.phase2_steps > 0)
        provenance.write_record(out, rows)  # which images it saw: synthesize checks it
        atomic.write_json(out / "prompts.json", dict(zip(rows.path, texts)))
    report = {"classes": chosen, **summary, "base": cfg.model_dir}
    atomic.write_json(paths.SD_LORA_TRAIN, report | runtime.describe() | {"processes": world.size})


if __name__ == "__main__":
    run_main(main)

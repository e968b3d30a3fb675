"""Stage sd_lora: fine-tune a local Stable Diffusion folder with LoRA on train-split real images
(as the ISIC 2024 SD+LoRA study: phase 1 UNet only, phase 2 UNet + text encoder;
rebalance/synth/lora_train.py).

Prompts come from the one structured prompt builder (rebalance/synth/diffusion_sd.py prompt_for:
lesion colour, size/shape, border, skin tone, severity) over `synthesize.diffusion.sd.attributes`
and its template. Trains on the classes with a deficit (or `sd_lora.classes`). Writes
models/sd_lora (pytorch_lora_weights.safetensors, training_set.json, prompts.json) and
metrics/sd_lora.json (loss and seconds per step per phase). Set `synthesize.diffusion.sd.lora:
models/sd_lora` to generate with it. With `sd_lora.model_dir: null` (the default: no SD weights
ship with the project) it trains nothing and says so.
"""

from __future__ import annotations

import json
import sys

from rebalance.core import atomic, manifest, params as params_mod, paths, ranks
from rebalance.core.errors import RebalanceError, run_main
from rebalance.synth import provenance


def main() -> None:
    params = params_mod.load()
    cfg, sd = params["sd_lora"], params["synthesize"]["diffusion"]["sd"]
    if cfg["model_dir"] is None:
        with atomic.output_dir(paths.SD_LORA) as out:
            atomic.write_text(out / "NOT_TRAINED.txt", "sd_lora.model_dir is null\n")
        atomic.write_json(paths.SD_LORA_TRAIN, {"trained": False, "note": "sd_lora.model_dir is null"})
        print("sd_lora: skipped, sd_lora.model_dir is null (a local SD 1.5 folder trains the LoRA)")
        return
    from rebalance.core import device  # (torch, diffusers, peft: seconds a skip need not pay)
    from rebalance.synth import diffusion_sd, lora_train

    if cfg["processes"] > 1 and not ranks.launched():  # dvc repro: launch the data-parallel processes
        sys.exit(ranks.relaunch("stages.sd_lora", cfg["processes"]))
    runtime = device.runtime(params)
    world = ranks.World.current(cpu=runtime.device.type == "cpu")
    classes = params["dataset"]["classes"]
    plan = json.loads(paths.PLAN.read_text())
    chosen = cfg["classes"] or [c for c in classes if sum(plan["generated"][c].values()) > 0]
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    rows = real[(real.split == "train") & real.label.isin(chosen)].sort_values("path")
    if rows.empty:
        raise RebalanceError(f"sd_lora: no train images of {', '.join(chosen)}; set sd_lora.classes")
    attrs = diffusion_sd.attributes(sd["attributes"])
    prompts = [
        diffusion_sd.prompt_for(attrs.get(p, {}), c, classes, sd["prompt"])
        for p, c in zip(rows.path, rows.label)
    ]
    pipe, noise = lora_train.load_base(cfg["model_dir"])
    summary = lora_train.train(
        pipe, noise, [paths.RAW / p for p in rows.path], prompts,
        phase1_steps=cfg["phase1_steps"], phase2_steps=cfg["phase2_steps"], rank=cfg["rank"], lr=cfg["lr"],
        resolution=cfg["resolution"], batch_size=cfg["batch_size"], seed=cfg["seed"],
        runtime=runtime, world=world,
    )  # fmt: skip
    if not world.main:  # every process holds the same adapters; the first one saves them
        return
    with atomic.output_dir(paths.SD_LORA) as out:
        lora_train.save(pipe, out, text_encoder_trained=cfg["phase2_steps"] > 0)
        provenance.write_record(out, rows)  # which images it saw: synthesize checks it
        atomic.write_json(out / "prompts.json", dict(zip(rows.path, prompts)))
    report = {"trained": True, "classes": chosen, **summary, "base": cfg["model_dir"]}
    atomic.write_json(paths.SD_LORA_TRAIN, report | runtime.describe() | {"processes": world.size})


if __name__ == "__main__":
    run_main(main)

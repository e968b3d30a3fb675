"""Stage train_generator@sd_lora on a tiny random SD pipeline: phase 1 and 2 train and save LoRA
weights, and the sd backend (text2img, img2img, inpaint) really uses them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import folder_params, set_params
from imagegen import make_folder, stage, workdir
from safetensors.torch import load_file, save_file
from sdgen import tiny_sd_pipeline

from rebalance.synth import diffusion
from rebalance.synth.base import Context


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    """A work folder with two classes ingested and counted, and a LoRA trained by the stage."""
    root = tmp_path_factory.mktemp("lora")
    base = tiny_sd_pipeline(root / "t2i", inpaint=False)
    make_folder(root / "src", {"common": 9, "rare": 4})
    # 4 rare images: too few for the default val/test quota (5)
    updates = {
        "generators": generators(base),
        "count": {"target": {"strategy": "max"}, "min_test_per_class": 0},
    }
    work = workdir(root, root / "src", ["common", "rare"], updates)
    for name in ("raw", "count", "train_sd_lora"):
        stage(work, name)
    return work, base


def generators(base, **sd_lora) -> dict:
    """Params `generators`: the diffusion UNet method diffusion samples by default, and a LoRA on `base`."""
    lora = {"model_dir": str(base), "phase1_steps": 3, "phase2_steps": 2, "lr": 0.01, "resolution": 16,
            "batch_size": 2}  # fmt: skip
    return {"diffusion": {}, "sd_lora": lora | sd_lora}


def test_phase_1_and_2_train_and_save_unet_and_text_encoder_lora(lora):
    work, _ = lora
    weights = load_file(str(work / "models/generators/sd_lora/pytorch_lora_weights.safetensors"))
    assert any(k.startswith("unet.") for k in weights) and any(k.startswith("text_encoder.") for k in weights)
    report = json.loads((work / "metrics/sd_lora_train.json").read_text())
    assert report["classes"] == ["common", "rare"]  # generators.sd_lora.classes null: every class
    assert report["phase1"]["steps"] == 3 and report["phase2"]["steps"] == 2
    assert report["phase1"]["seconds_per_step"] > 0
    record = json.loads((work / "models/generators/sd_lora/training_set.json").read_text())
    prompts = json.loads((work / "models/generators/sd_lora/prompts.json").read_text())
    assert record["n"] == len(prompts)
    assert {p.split("/")[0] for p in prompts} == {"common", "rare"}


def generate(work, base, lora_dir, mode: str, out: str) -> list[dict]:
    manifest = pd.read_csv(work / "data/counted/manifest.csv")
    train = manifest[manifest.split == "train"].reset_index(drop=True)
    sd = {"mode": mode, "model_dir": str(base), "lora": str(lora_dir) if lora_dir else None,
          "attributes": None, "resolution": 16, "steps": 2, "guidance": 1.0, "strength": 0.6}  # fmt: skip
    params = folder_params(
        ["common", "rare"], {"allow_external_model": True, "diffusion": {"backend": "sd", "sd": sd}}
    )
    ctx = Context(params=params, train_real=train, raw_dir=work / "data/raw", out_dir=work / out)
    return diffusion.DiffusionSampler(ctx).generate("rare", [0, 1])


def pixels(work, rows, out: str) -> np.ndarray:
    from rebalance.core.images import load_array

    return np.stack([load_array(work / out / r["path"]) for r in rows]).astype(int)


@pytest.mark.parametrize("mode", ["text2img", "img2img", "inpaint"])
def test_generated_images_change_when_the_lora_changes(lora, tmp_path, mode):
    work, base = lora
    if mode == "inpaint":
        base = tiny_sd_pipeline(tmp_path / "inpaint", inpaint=True)  # same attention shapes
    trained = work / "models/generators/sd_lora"
    scaled = tmp_path / "scaled"  # the same LoRA with its up-projections x 4
    shutil.copytree(trained, scaled)
    weights = load_file(str(trained / "pytorch_lora_weights.safetensors"))
    save_file({k: v * 4 if "lora_B" in k or "lora.up" in k else v for k, v in weights.items()},
              str(scaled / "pytorch_lora_weights.safetensors"))  # fmt: skip
    with_lora = generate(work, base, trained, mode, f"a_{mode}")
    again = generate(work, base, trained, mode, f"b_{mode}")
    other = generate(work, base, scaled, mode, f"c_{mode}")
    assert [r["sha256"] for r in with_lora] == [r["sha256"] for r in again]  # determined by the seed
    a, c = pixels(work, with_lora, f"a_{mode}"), pixels(work, other, f"c_{mode}")
    assert (a != c).mean() > 0.02  # the weights are really used (inpaint: only inside the mask)
    detail = json.loads(with_lora[0]["detail"])
    assert detail["mode"] == mode and detail["generator"]["lora"]["external"] is False
    if mode == "text2img":
        assert with_lora[0]["source"] == "" and detail["prompt_from"].startswith("rare/")
    else:
        assert with_lora[0]["source"].startswith("rare/")


@pytest.mark.slow
def test_lora_trained_in_two_processes_matches_one_process(lora, tmp_path):
    """Data-parallel LoRA (generators.sd_lora.processes: 2, accelerate): each process takes half of every
    global batch and the adapters' gradients are averaged, so the adapters follow the one-process
    run up to float rounding, not a different run."""
    import torch

    work, base = lora
    two = tmp_path / "two"
    shutil.copytree(work, two, symlinks=True)
    shutil.rmtree(two / "models/generators/sd_lora")
    set_params(two, {"generators": generators(base, processes=2)})  # (generators: replaced whole)
    log = stage(two, "train_sd_lora").stdout
    assert "launching 2 processes with accelerate" in log
    assert json.loads((two / "metrics/sd_lora_train.json").read_text())["processes"] == 2
    one_w = load_file(str(work / "models/generators/sd_lora/pytorch_lora_weights.safetensors"))
    two_w = load_file(str(two / "models/generators/sd_lora/pytorch_lora_weights.safetensors"))
    assert one_w.keys() == two_w.keys()
    moved = max(float(v.abs().max()) for v in one_w.values())
    assert all(torch.allclose(one_w[k], two_w[k], atol=1e-3 * moved) for k in one_w), {
        k: float((one_w[k] - two_w[k]).abs().max()) for k in one_w
    }

"""Every trained generator's folder holds a model card (README.md: Hugging Face front matter, the
training-set record, training, params, intended use, where quality is measured) and the sample
sheet samples.png its model drew: tiny diffusion, GAN and SD LoRA trained by their stages."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from imagegen import make_folder, stage, workdir
from PIL import Image
from sdgen import tiny_sd_pipeline

from rebalance.synth import model_card

CLASSES = ["common", "rare"]
RES = 16


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A work folder with two classes ingested and counted, and a tiny diffusion UNet and GAN
    trained by their stages (an SD LoRA on a tiny SD pipeline is trained by its own test)."""
    root = tmp_path_factory.mktemp("cards")
    base = root / "t2i" / "sd"  # built by the SD LoRA's test
    make_folder(root / "src", {"common": 9, "rare": 4})
    generators = {
        "diffusion": {"resolution": RES, "channels": [16, 32], "steps": 10, "batch_size": 8,
                      "attention": False},
        "gan": {"resolution": RES, "z_dim": 8, "channels": 8, "steps": 5, "batch_size": 8},
        "sd_lora": {"model_dir": str(base), "classes": ["rare"], "phase1_steps": 2, "phase2_steps": 1,
                    "lr": 0.01, "resolution": RES, "batch_size": 2},
    }  # fmt: skip
    updates = {
        "generators": generators,
        "count": {"target": {"strategy": "max"}, "min_test_per_class": 0},
        "compute": {"device": "cpu", "threads": 1},  # the sheets are redrawn here on the CPU
    }
    work = workdir(root, root / "src", CLASSES, updates)
    for name in ("raw", "count", "train_diffusion", "train_gan"):
        stage(work, name)
    return work


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def training_hash(work, classes: list[str]) -> str:
    """sha256 over the sorted `path:sha256` lines of the train rows of `classes` (provenance's
    definition), computed here from data/counted/manifest.csv."""
    manifest = pd.read_csv(work / "data/counted/manifest.csv")
    rows = manifest[(manifest.split == "train") & manifest.label.isin(classes)].sort_values("path")
    return hashlib.sha256("".join(f"{p}:{s}\n" for p, s in zip(rows.path, rows.sha256)).encode()).hexdigest()


def check_record(work, folder, classes: list[str]) -> str:
    """The card's training-set hash is the record's and the one recomputed from the manifest."""
    card = (folder / "README.md").read_text()
    record = json.loads((folder / "training_set.json").read_text())
    manifest = pd.read_csv(work / "data/counted/manifest.csv")
    train = manifest[(manifest.split == "train") & manifest.label.isin(classes)]
    assert record["n"] == len(train) and record["sha256"] == sorted(set(train.sha256))
    shown = re.search(r"Training-set sha256: `([0-9a-f]{64})`", card).group(1)
    assert shown == record["manifest_sha256"] == training_hash(work, classes)
    assert f"Images: {len(train)}" in card
    for label in classes:
        assert f"| {label} | {int((train.label == label).sum())} |" in card
    assert "train-split images only, none of the val or test splits" in card
    return card


def check_sheet(folder, labels: list[str], per_class: int) -> None:
    """samples.png: one row per class of `per_class` images, each row under its label strip."""
    sheet = np.asarray(Image.open(folder / "samples.png").convert("RGB"))
    tile, pad, strip = model_card.tile_size(RES), model_card.PAD, model_card.LABEL_H
    assert tile == 64  # 16 px images enlarged 4x
    height, width = sheet.shape[:2]
    assert width == pad + per_class * (tile + pad)
    assert (height - pad) % (strip + tile + pad) == 0 and (height - pad) // (strip + tile + pad) == len(
        labels
    )
    for r in range(len(labels)):
        top = pad + r * (strip + tile + pad)
        assert (sheet[top : top + strip, pad : pad + 60] < 128).any(), f"row {r}: no label drawn"
        for i in range(per_class):
            left = pad + i * (tile + pad)
            cell = sheet[top + strip : top + strip + tile, left : left + tile]
            assert (cell != 255).any(), f"row {r}, image {i}: blank"


@pytest.mark.parametrize("key", ["diffusion", "gan"])
def test_a_generator_trained_from_scratch_has_its_card_and_sheet(work, key):
    folder = work / "models/generators" / key
    card = check_record(work, folder, CLASSES)
    front = front_matter(card)
    assert front["library_name"] == ("diffusers" if key == "diffusion" else "pytorch")
    assert front["pipeline_tag"] == "unconditional-image-generation"
    assert {"rebalance", "synthetic-data", "medical-imaging", key} <= set(front["tags"])
    assert "base_model" not in front and "none, trained from scratch" in card
    params = yaml.safe_load((work / "params.yaml").read_text())["generators"][key]
    shown = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])["generators"][key]
    assert {k: shown[k] for k in params} == params  # the params as YAML, defaults filled in
    metrics = json.loads((work / f"metrics/{key}_train.json").read_text())
    assert f"| steps | {params['steps']} |" in card and f"| batch size | {params['batch_size']} |" in card
    assert f"| seconds | {metrics['seconds']} |" in card and f"| device | {metrics['device']} |" in card
    assert f"Parameters: {metrics['parameters']:,}" in card
    assert "not for diagnosis" in card.lower() and "clinician review" in card
    assert "metrics/synthesis_quality.json" in card and "data/fused/README.md" in card
    assert "![samples](samples.png)" in card
    check_sheet(folder, CLASSES, model_card.PER_CLASS)


@pytest.mark.parametrize("key", ["diffusion", "gan"])
def test_the_sample_sheet_is_what_the_saved_model_draws_from_the_training_seed(work, tmp_path, key):
    """The stage's sheet, drawn again here by the saved model with generators.<key>.seed, is the same."""
    import torch

    from rebalance.core.device import CPU
    from rebalance.synth import diffusion_core, gan_core
    from stages import train_diffusion, train_gan

    folder = work / "models/generators" / key
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the stage ran (compute.threads: 1)
    try:
        if key == "diffusion":
            unet, _ = diffusion_core.load(folder)
            sheet = train_diffusion.sample_sheet(tmp_path, unet, CLASSES, 0, CPU)
        else:
            sheet = train_gan.sample_sheet(tmp_path, gan_core.load(folder), CLASSES, 0, CPU)
    finally:
        torch.set_num_threads(threads)
    assert sheet.labels == tuple(CLASSES) and sheet.per_class == model_card.PER_CLASS
    drawn = np.asarray(Image.open(tmp_path / "samples.png"), dtype=int)
    assert np.abs(drawn - np.asarray(Image.open(folder / "samples.png"), dtype=int)).max() <= 1
    if key == "gan":  # another seed, other images
        train_gan.sample_sheet(tmp_path, gan_core.load(folder), CLASSES, 1, CPU)
        assert not np.array_equal(np.asarray(Image.open(tmp_path / "samples.png"), dtype=int), drawn)


def test_an_sd_lora_has_its_base_model_and_a_sheet_of_its_classes(work):
    tiny_sd_pipeline(work.parent / "t2i", inpaint=False)  # generators.sd_lora.model_dir
    stage(work, "train_sd_lora")
    folder = work / "models/generators/sd_lora"
    card = check_record(work, folder, ["rare"])  # generators.sd_lora.classes: rare only
    front = front_matter(card)
    assert front["library_name"] == "diffusers" and front["pipeline_tag"] == "text-to-image"
    assert front["base_model"] == "sd"  # the local SD folder's name
    assert {"rebalance", "synthetic-data", "medical-imaging", "sd_lora"} <= set(front["tags"])
    assert "trained from scratch" not in card
    check_sheet(folder, ["rare"], model_card.SD_PER_CLASS)  # one row: the one class it generates
    prompts = json.loads((folder / "prompts.json").read_text())
    assert prompts[min(prompts)] in card  # the row's prompt: the class's first training image's


def test_sd_sheets_are_drawn_on_a_cpu_only_when_cheap():
    sd15 = model_card.sd_cpu_seconds(
        859_520_964, 128 // 8, 2 * model_card.SD_PER_CLASS, model_card.SHEET_STEPS
    )
    assert sd15 > 60  # measured: about 2 minutes on 2 cores
    tiny = model_card.sd_cpu_seconds(400_000, RES // 2, 2 * model_card.SD_PER_CLASS, model_card.SHEET_STEPS)
    assert tiny < model_card.SHEET_BUDGET_S


def test_a_card_without_a_sheet_says_why(tmp_path):
    (tmp_path / "training_set.json").write_text(
        json.dumps({"manifest_sha256": "0" * 64, "n": 3, "sha256": []})
    )
    model_card.write(
        tmp_path, key="sd_lora", dataset="toy", classes={"a": 3}, params={"model_dir": "/models/sd-1.5"},
        metrics={"phase1": {"steps": 2, "seconds": 1.0, "loss": 0.1}}, architecture=["LoRA"],
        parameters=10, base_model="sd-1.5", sheet="too slow on this CPU",
    )  # fmt: skip
    card = (tmp_path / "README.md").read_text()
    assert front_matter(card)["base_model"] == "sd-1.5"
    assert "No sample sheet was drawn: too slow on this CPU." in card and "![samples]" not in card
    assert "| steps | 2 (phase 1: UNet) |" in card and not (tmp_path / "samples.png").exists()
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_a_progressive_gan_is_grown_by_its_stage_with_the_same_record_and_card(tmp_path):
    """`generators.gan.progressive`: stage train_gan grows 4 -> 8 -> 16 px, records the phases, and
    the saved model keeps the training-set record, the card and a sheet at the final resolution."""
    make_folder(tmp_path / "src", {"common": 9, "rare": 4})
    gan = {"resolution": RES, "z_dim": 8, "channels": 8, "steps": 6, "batch_size": 8, "progressive": True,
           "base_resolution": 4}  # fmt: skip
    updates = {
        "generators": {"gan": gan, "diffusion": {}},  # (the methods the params name; only gan is run)
        "count": {"target": {"strategy": "max"}, "min_test_per_class": 0},
        "compute": {"device": "cpu", "threads": 1},
    }
    work = workdir(tmp_path, tmp_path / "src", CLASSES, updates)
    for name in ("raw", "count", "train_gan"):
        stage(work, name)
    summary = json.loads((work / "metrics/gan_train.json").read_text())
    assert summary["phases"] == [{"resolution": r, "steps": 2} for r in (4, 8, 16)]
    folder = work / "models/generators/gan"
    card = check_record(work, folder, CLASSES)
    assert "Grown progressively (4 -> 8 -> 16 px" in card
    check_sheet(folder, CLASSES, model_card.PER_CLASS)  # sampled at the final resolution

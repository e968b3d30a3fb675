"""Every folder and file the stages read and write, named once (relative to the repository root)."""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

DATA = Path("data")
RAW = DATA / "raw"  # the real images as ingested: data/raw/<class>/<file>
LABELS = RAW / "labels.csv"  # per-image attributes (the demo's true lesion counts, ...)
RAW_INDEX = RAW / "images.csv"  # every ingested image: path, label, source path, official split, group
RAW_INGEST = RAW / "ingest.json"  # the params data/raw was ingested with (is it current?)
RAW_FINGERPRINTS = RAW / "fingerprints.csv"  # per ingested image: sha256, pixels sha256, phash (raw)
COUNTED = DATA / "counted"  # the split and the plan: manifest.csv (paths relative to data/raw), plan.json
PLAN = COUNTED / "plan.json"
FINGERPRINTS = COUNTED / "fingerprints.csv"  # per real image: decoded-pixel sha256 and perceptual hash
SYNTHESIZED = DATA / "synthesized"  # generated train images + manifest.csv
UNFILTERED_MANIFEST = "unfiltered.csv"  # in data/synthesized: every planned slot's first try
FLIPPED = DATA / "flipped"  # horizontal flips + manifest.csv
FUSED = DATA / "fused"  # the published dataset: {train,val,test}/<class>/<file> + manifest.csv
FUSED_OUTS = ("train", "val", "test", "manifest.csv")  # stage fuse's outputs in data/fused
DATASET_CARD = FUSED / "README.md"  # stage document: the dataset card every consumer of data/fused receives
CROISSANT = FUSED / "croissant.json"  # stage document: the Croissant metadata of data/fused
FROZEN_TEST_SET = Path("releases/test_set.json")  # the last release's test images (stage count keeps them)

MODELS = Path("models")
GENERATORS = MODELS / "generators"  # one folder per trained generator (stage train_generator@<name>)
DIFFUSION_MODEL = GENERATORS / "diffusion"
GAN_MODEL = GENERATORS / "gan"
SD_LORA = GENERATORS / "sd_lora"
JUDGE = MODELS / "judge"  # the classifier on real train images that scores every synthetic image

METRICS = Path("metrics")
RAW_REPORT = METRICS / "raw.json"
COUNTS = METRICS / "counts.json"
DETECTOR = METRICS / "detector.json"
DIFFUSION_TRAIN = METRICS / "diffusion_train.json"
GAN_TRAIN = METRICS / "gan_train.json"
SD_LORA_TRAIN = METRICS / "sd_lora_train.json"
SYNTHESIS_QUALITY = METRICS / "synthesis_quality.json"
JUDGE_METRICS = METRICS / "judge.json"
FILTER = METRICS / "filter.json"  # the synthesis filter: kept, rejected and empty slots per class and method
SYNTHESIS_SPEED = METRICS / "synthesis_speed.json"  # seconds (and dollars) per image, per method, measured
FUSED_COUNTS = METRICS / "fused.json"
TEST_SET = METRICS / "test_set.json"  # the test set's identity: hash and file list (frozen across releases)
EVAL = METRICS / "eval.json"
SUMMARY = METRICS / "summary.json"
SUMMARY_MD = METRICS / "summary.md"
PLOTS = METRICS / "plots"
LESION_EDIT_GRID = PLOTS / "lesion_edit_grid.png"
SYNTHESIS_PLOTS = PLOTS / "synthesis"

DVCLIVE = Path("dvclive")
RELEASE_CARDS = Path("releases")


def classifier(variant: str, seed: int) -> Path:
    """The checkpoint of one trained classifier: models/<variant>/seed<seed>.pt."""
    return MODELS / variant / f"seed{seed}.pt"

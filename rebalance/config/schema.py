"""The one schema of params.yaml: every group, every key, its type, range and default.

Defaults live here and nowhere else; params.yaml shows the values chosen for this registry.
Field-level rules (types, ranges, allowed values, unknown keys) are pydantic's; rules that tie
several keys together (shares summing to 1, bins per class, ...) are the groups' model validators,
and raise `Rule` with the full key: the loader (rebalance/config/loader.py) reports it in one line.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from rebalance.config.synth import (
    METHODS,
    Assess,
    DataParallel,
    Diffusion,
    DiffusionTrain,
    Gan,
    GanTrain,
    Generators,
    LesionEdit,
    Mask,
    SdLora,
    StableDiffusion,
    Synthesize,
    check_method,
)
from rebalance.config.types import Group, PositiveInt, Regex, UserPath, need

SPLITS = ("train", "val", "test")
# what sources call them (split folders, a `split` column), matched case-insensitively: Kaggle's
# `Train/ Test/`, `valid/`, `validation/`
SPLIT_NAMES = {
    "train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}  # fmt: skip


def official_split(name: str) -> str | None:
    """The split (train, val, test) a source's folder or `split` value names; None for another name."""
    return SPLIT_NAMES.get(name.strip().lower())


# what a classifier variant sees
TRAIN_DATA = ("real", "balanced", "balanced_noflip", "real_oversampled", "balanced_unfiltered")

# ---- dataset, raw, count ---------------------------------------------------------------------


class Dataset(Group):
    name: str = Field(min_length=1)  # release tags: <name>@vX.Y.Z
    classes: list[str] = Field(min_length=2)  # in order (ordinal grades first to last)
    # Lesion-count grading (Hayashi bins, as ACNE04): class -> [low, high], high null = open.
    lesion_bins: dict[str, list[int | None]] | None = None
    # Per-image metadata of a folder source: a CSV (path relative to the repository) with a `path`
    # column relative to the source folder and any others; a `split` column is an official split.
    metadata: UserPath | None = None
    group_by: str | None = None  # a metadata column (patient id, ...): a group stays in one split
    # Or each image's group read from its path in the source: the match (its first group, if the
    # pattern has one); Kermany's chest_xray `person\d+`, CheXpert's `patient\d+`. Unmatched: alone.
    group_pattern: Regex | None = None
    # How an image meets a stage's square size (train.image_size, assess.image_size, ...):
    # stretch (resize) | crop (centred square first) | pad (black borders first). data/raw keeps originals.
    fit: Literal["stretch", "crop", "pad"] = "stretch"
    # Size of images generated from noise (diffusion full mode); null: the median train image side (<= 512).
    image_size: int | None = Field(None, ge=8, le=4096)

    @model_validator(mode="after")
    def _classes_and_bins(self):
        classes = self.classes
        need(len(set(classes)) == len(classes), "dataset.classes", "must list distinct class names")
        for c in classes:
            need(c != "" and "/" not in c, "dataset.classes", f"has bad name {c!r} (no '/', not empty)")
        if self.lesion_bins is not None:
            need(
                set(self.lesion_bins) == set(classes),
                "dataset.lesion_bins",
                "must give [low, high] for every class in dataset.classes (or be null)",
            )
            for c, b in self.lesion_bins.items():
                need(
                    len(b) == 2 and b[0] is not None and (b[1] is None or b[1] >= b[0]),
                    f"dataset.lesion_bins.{c}",
                    "must be [low, high] integers with high >= low (high may be null)",
                )
        need(
            self.group_pattern is None or self.group_by is None,
            "dataset.group_pattern",
            "and dataset.group_by are both set; keep the one that names each image's patient",
        )
        return self


class Demo(Group):
    scale: float = Field(1.0, gt=0, le=10)  # 1.0 = ACNE04's 513/633/182/129 images
    size: int = Field(128, ge=32, le=1024)  # pixels, square RGB
    seed: int = 0


def source_kind(source: str) -> Literal["demo", "csv", "npz", "folder"]:
    """What `raw.source` names: the demo, a CSV file, a MedMNIST .npz file, or a folder."""
    suffix = source.lower().rsplit(".", 1)[-1] if "." in source.rsplit("/", 1)[-1] else ""
    tables = {"csv": "csv", "tsv": "csv", "txt": "csv"}  # a CSV, or an image list such as ACNE04's
    return "demo" if source == "demo" else (tables | {"npz": "npz"}).get(suffix, "folder")


Name = Annotated[str, Field(min_length=1)]
PathFormat = Annotated[str, Field(pattern=r"\{\}")]


class Csv(Group):
    """A CSV source's own column names (ISIC 2024's train-metadata.csv: `path: isic_id`,
    `label: target`) and how a path cell becomes a file path relative to the CSV's folder
    (`path_format: train-image/image/{}.jpg`; `{}` is the cell)."""

    path: Name = "path"
    # the class column, or a one-hot table's class columns (ISIC 2019: [MEL, NV, BCC, ...]; a row's
    # class is the column holding 1)
    label: Name | Annotated[list[Name], Field(min_length=2)] = "label"
    # or several, tried in order: the first naming a file that exists (HAM10000's two image folders)
    path_format: PathFormat | Annotated[list[PathFormat], Field(min_length=1)] = "{}"
    # A multi-label cell (ChestX-ray14's `Finding Labels`: `Effusion|Pneumonia`) split on this: the
    # row's class is its one label in dataset.classes (none or several: a reported skip)
    label_separator: Name | None = None
    # A file without a header row (ACNE04's NNEW_trainval_0.txt: `levle0_1.jpg 0 1`): its column
    # names, in order. Such a file may be separated by blanks.
    header: Annotated[list[Name], Field(min_length=1)] | None = None
    # Official val/test lists beside the source, read as it is (ACNE04: {test: NNEW_test_0.txt});
    # the source then lists the train images. A split missing here is drawn from train (count).
    split_files: dict[Literal["val", "test"], Name] = {}


class Raw(Group):
    # `demo`, a folder of <class>/ folders, a CSV (`path,label`, optional split/group/metadata
    # columns; paths relative to the CSV's folder) or a MedMNIST-format .npz (official splits kept)
    source: UserPath
    on_bad_file: Literal["skip", "error"] = "skip"
    # 16-bit and float images (X-rays) to 8 bit: `percentile` maps the 0.5th..99.5th percentile of
    # each image's values to 0..255, `minmax` its full range (rebalance/core/images.py window_8bit)
    window: Literal["percentile", "minmax"] = "percentile"
    # the frame a multi-frame DICOM file gives: an index (0 the first, -1 the last) or `middle`
    dicom_frame: int | Literal["middle"] = 0
    csv: Csv = Csv()  # a CSV source's column names and path format (defaults: `path`, `label`, as is)
    demo: Demo = Demo()


class Split(Group):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)


class Target(Group):
    strategy: Literal["fixed", "max"] = "fixed"
    n: PositiveInt = 280  # strategy fixed: each class's train target is max(n, its count)


class Count(Group):
    seed: int = 42
    split: Split = Split()
    target: Target = Target()
    near_duplicate_bits: int = Field(4, ge=0, le=16)  # phash distance of a near-duplicate (count, fuse)
    # Keep at most n real images of a class (the ISIC 2024 SD+LoRA study's 8,000 sampled benign images): whole
    # duplicate sets and groups, in a seeded order that adding images does not reshuffle; {} keeps all
    max_per_class: dict[str, Annotated[int, Field(ge=3)]] = {}
    # An official val: keep it, or merge it into train and draw val anew as for a source without
    # one (redraw: Kermany's chest_xray ships 16 val images, too few to pick a checkpoint on)
    official_val: Literal["keep", "redraw"] = "keep"
    # Every class gets at least this many val and test images (a class never goes unmeasured): a
    # class short of them takes its train units (an image with its duplicates and group) with the
    # lowest hash into test, then val; one that has fewer than 2n+1 units is an error. Splits a
    # source brings stay as given (only the ones drawn from its train are filled); 0: off.
    min_test_per_class: int = Field(2, ge=0)
    # Gains from synthetic images level off around 10 synthetic per real image (Sagers et al.
    # 2023): `rebalance plan` and the release warn for a class planned above this ratio.
    max_synthetic_ratio: float = Field(10.0, gt=0)
    # After a release, its real test images stay the test set (releases/test_set.json, written by
    # `rebalance release`): images new to the source go to train or val, so metrics stay comparable.
    # true: draw a new test set (the next release then needs `rebalance release --new-test-set`)
    new_test_set: bool = False
    seconds_per_image: dict[str, Annotated[float, Field(ge=0)]] = {}  # plan estimates, per method
    dollars_per_image: dict[str, Annotated[float, Field(ge=0)]] = {}

    @model_validator(mode="after")
    def _split_and_estimates(self):
        total = self.split.train + self.split.val + self.split.test
        need(
            math.isclose(total, 1.0, abs_tol=1e-6), "count.split", f"fractions must sum to 1 (got {total:g})"
        )
        for key in ("seconds_per_image", "dollars_per_image"):
            for name in getattr(self, key):
                check_method(name, f"count.{key}.{name}")
        return self


# ---- synthesize, generators, assess: the groups live in rebalance/config/synth.py ------------

__all__ = [  # re-exported: one schema
    "METHODS", "Assess", "Diffusion", "DiffusionTrain", "Gan", "GanTrain", "Generators",
    "LesionEdit", "Mask", "SdLora", "StableDiffusion", "Synthesize",
]  # fmt: skip


# ---- flip, fuse, train, evaluate, release ----------------------------------------------------


class Flip(Group):
    enabled: bool = True
    splits: list[Literal["train", "val", "test"]] = ["train"]
    # png: every flip lossless; source: a JPEG's flip a JPEG (jpeg_quality), several times smaller
    # than a PNG of a photograph, the others PNG
    format: Literal["png", "source"] = "png"
    jpeg_quality: int = Field(95, ge=50, le=100)


class Fuse(Group):
    synthetic_in_eval: bool = False  # keep val/test real-only
    # files: data/fused/<split>/<class>/<file> (hard links); shards: WebDataset tars per split
    # (rebalance/dataset/shards.py), a few files instead of one per image, for 100k+ image releases
    format: Literal["files", "shards"] = "files"
    shard_mb: float = Field(256.0, gt=0)  # shards: the largest tar (MiB), one image at least


class Variant(Group):
    # balanced_unfiltered: balanced as it would be without synthesize.filter (each slot's first try)
    data: Literal["real", "balanced", "balanced_noflip", "real_oversampled", "balanced_unfiltered"]
    augment: bool = False  # online flips, brightness/contrast, shifts
    weighted: bool = False  # inverse-frequency class weights in the loss
    shuffle_labels: bool = False  # a guard rail: such a model must score at chance
    # data balanced only: real + this method's images (and flips), that method's images repeated
    # (seeded) to balanced's per-class counts: the per-generator rows (balanced_<method>)
    method: str | None = None
    # the variant's name in the ISIC 2024 SD+LoRA study (B0, A1, W1, S2, S2w), shown beside its own
    study: str | None = None


def _default_variants() -> dict[str, Variant]:
    return {
        "real": Variant(data="real", study="B0"),
        "real_aug": Variant(data="real", augment=True, study="A1"),
        "real_weighted": Variant(data="real", augment=True, weighted=True, study="W1"),
        "balanced": Variant(data="balanced", augment=True, study="S2"),
        "balanced_weighted": Variant(data="balanced", augment=True, weighted=True, study="S2w"),
        # the control: balanced with duplicated real images in place of its synthetic ones
        "real_oversampled": Variant(data="real_oversampled", augment=True),
        # curation's control: balanced without the filter (every slot's first try)
        "balanced_unfiltered": Variant(data="balanced_unfiltered", augment=True),
    }


class Train(DataParallel):
    headline: str = "balanced"  # the variant behind metrics/eval.json
    seeds: list[int] = Field([0, 1, 2], min_length=1)  # seed noise enters every interval
    image_size: int = Field(64, ge=16)
    steps: PositiveInt = 120  # optimizer steps, equal for every variant
    eval_every: PositiveInt = 20  # val checkpoint choice every N optimizer steps (and the last)
    batch_size: PositiveInt = 64
    lr: float = Field(0.003, gt=0)
    weight_decay: float = Field(0.0001, ge=0)
    width: PositiveInt = 16  # channels of the first conv layer (small_cnn)
    # small_cnn (CPU default) or a timm model: resnet18, resnet50, efficientnet_b0, convnext_tiny, ...
    backbone: str = "small_cnn"
    pretrained: UserPath | None = (
        None  # local weights file or HF snapshot folder (timm backbones); never downloaded
    )
    # every classifier variant (one stage train@<name> each); train@<headline> is the release's model
    variants: dict[str, Variant] = Field(default_factory=_default_variants, min_length=1)
    processes: PositiveInt = 1  # data-parallel training (DataParallel)
    KEY = "train"

    @model_validator(mode="after")
    def _headline(self):
        need(
            self.headline in self.variants,
            "train.headline",
            f"must name a variant ({', '.join(self.variants)})",
        )
        control = self.variants.get("real_oversampled")  # differs only in synthetic images from ...
        compared = [self.headline, *(n for n, v in self.variants.items() if v.method)]
        for name in compared if control is not None else []:
            v = self.variants[name]
            for key in ("augment", "weighted") if v.data == "balanced" else ():
                need(
                    getattr(v, key) == getattr(control, key),
                    f"train.variants.real_oversampled.{key}",
                    f"must equal {name}'s ({getattr(v, key)}): the matched control differs from the "
                    "variants compared with it only in synthetic images",
                )
        head = self.variants[self.headline]
        for name, v in self.variants.items():
            for key in ("augment", "weighted") if v.data == "balanced_unfiltered" else ():
                need(
                    getattr(v, key) == getattr(head, key),
                    f"train.variants.{name}.{key}",
                    f"must equal the headline {self.headline}'s ({getattr(head, key)}): the unfiltered "
                    "variant differs from it only in the images the filter replaced",
                )
        return self


class Evaluate(Group):
    batch_size: PositiveInt = 256
    bootstrap: PositiveInt = 10000  # two-level resamples; the smallest p is 2 / (bootstrap + 1)
    ordinal: bool | None = None  # grade MAE and QWK; null: when dataset.lesion_bins is set


class SyntheticGate(Group):
    """Quality of the kept synthetic images, per method and class (metrics/synthesis_quality.json,
    metrics/filter.json), each against the real val images' reference row."""

    min_intended_ratio: float = Field(0.5, ge=0)  # intended-class rate >= this x the real val images'
    max_empty_share: float = Field(0.1, ge=0, le=1)  # slots the filter left empty
    max_realism_auc: float | None = Field(None, ge=0.5, le=1)  # real-vs-synthetic AUC; null: reported only
    near_copies: int = Field(0, ge=0)  # near-copies of train, val or test images allowed


class Gate(Group):
    min_metrics: dict[str, float] = {"balanced_accuracy": 0.6}  # metrics/eval.json key -> minimum
    max_imbalance: float | None = Field(2.0, ge=1)  # largest / smallest train class; null skips
    invariants: bool = True  # CONTRACT invariants hold on data/fused/manifest.csv
    checksums: bool = True  # every data/fused file matches its manifest sha256
    min_reviewed: float = Field(0.0, ge=0, le=1)  # share of synthetic train images a reviewer accepted
    synthetic: SyntheticGate | None = SyntheticGate()  # null skips the synthetic-quality checks


class ReaderStudy(Group):
    real: int = Field(20, ge=0)  # the ISIC 2024 SD+LoRA study: 20 real + 20 synthetic images per reader
    synthetic: int = Field(20, ge=0)
    seed: int = 0  # which images, in which order (the same for every reader)
    classes: list[str] | None = None  # null: the classes with synthetic images (the minority)


class Review(Group):  # `rebalance review` and `rebalance reader-study` (rebalance/review/); no stage reads it
    reader_study: ReaderStudy = ReaderStudy()


class Annotate(Group):  # `rebalance annotate` (rebalance/review/annotate.py); no stage reads it
    # attribute -> the values a labeller chooses from; each is a column of annotations/<dataset.name>.csv,
    # which synthesize.diffusion.sd.attributes can name: the SD prompt builder reads lesion_colour,
    # size_shape, border and skin_tone (the ISIC 2024 SD+LoRA study's structured labels)
    attributes: dict[str, list[str]] = {
        "lesion_colour": ["red", "pink", "brown", "dark brown", "black", "blue-grey", "skin-coloured"],
        "size_shape": ["small round", "small irregular", "large round", "large irregular"],
        "border": ["well-defined", "ill-defined", "irregular"],
        "skin_tone": ["very light", "light", "intermediate", "tan", "brown", "dark"],
    }
    classes: list[str] | None = None  # null: the classes that get synthetic images (metrics/counts.json)

    @model_validator(mode="after")
    def _values(self):
        need(bool(self.attributes), "annotate.attributes", "must name at least one attribute")
        for name, values in self.attributes.items():
            key = f"annotate.attributes.{name}"
            need(
                name not in ("path", "annotator", "time") and name.strip() == name and name != "",
                key, "is a reserved or blank column name (path, annotator, time)",
            )  # fmt: skip
            need(len(values) > 0, key, "must list at least one value")
            need(len(set(values)) == len(values), key, "must list distinct values")
            need(all(v.strip() for v in values), key, "must not list a blank value")
        return self


class Card(Group):
    """What the dataset card (data/fused/README.md, releases/<tag>.md) and the Croissant metadata
    (data/fused/croissant.json) say that the pipeline cannot know (stage document)."""

    pretty_name: str | None = None  # the card's title; null: dataset.name
    # the source images' licence, a Hugging Face / SPDX id (cc-by-nc-4.0, cc-by-4.0, other, ...): the
    # synthetic images derive from them and are released under it
    license: str = "unknown"
    citation: str | None = None  # how to cite the source dataset (BibTeX), repeated on the card
    url: str | None = None  # where the registry is published (its git URL): the Croissant `url`
    # the public datasets the real images come from, in the dataset-card vocabulary: original,
    # extended|<name> (the card adds extended|<source> for each name given here)
    source_datasets: list[str] = []
    # who labelled the real images (machine-generated is added for the synthetic images)
    annotations_creators: list[
        Literal["expert-generated", "crowdsourced", "found", "machine-generated", "no-annotation", "other"]
    ] = ["expert-generated"]
    task_categories: list[str] = ["image-classification"]
    # the intended use and what the data must not be used for, as the card states them
    intended_use: str = (
        "Training and evaluating image classifiers for research, with the class balance restored by "
        "synthetic images; the test split (real images only) measures them."
    )
    out_of_scope: str = (
        "Clinical diagnosis or any decision about a patient; estimating prevalence (the class balance "
        "is made, not observed); training a generator of medical images for release."
    )
    # personal or sensitive information in the images, as the source documents it
    personal_information: str = (
        "Medical images of people. The real images are the source's, as de-identified as the source "
        "made them; synthetic images derive from the real train images and may reproduce their features."
    )


class Release(Group):
    remote: str | None = None  # DVC remote to push to; null: the default remote
    gate: Gate = Gate()
    card: Card = Card()


class Compute(Group):
    """Where tensors live and how many cores decode images (rebalance/core/device.py)."""

    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")  # auto: CUDA, then MPS, then CPU
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 autocast on GPU only
    threads: PositiveInt | None = None  # torch threads on CPU (null: every core)
    workers: int = Field(2, ge=0)  # DataLoader processes decoding images (0: in the stage's process)
    processes: PositiveInt | None = None  # process pool of ingest, detect and flip (null: every core)
    # an image set up to this size (uint8 at the stage's resolution) is decoded once and kept in RAM;
    # a larger one is streamed from files batch by batch (memory flat in the data size)
    in_memory_mb: int = Field(512, ge=0)


class Params(Group):
    """The whole of params.yaml. Groups without a default must be present (dvc.yaml reads them)."""

    dataset: Dataset
    raw: Raw
    count: Count
    synthesize: Synthesize
    generators: Generators
    assess: Assess
    flip: Flip
    fuse: Fuse
    train: Train
    evaluate: Evaluate
    compute: Compute = Compute()
    review: Review = Review()
    annotate: Annotate = Annotate()
    release: Release = Release()

    @model_validator(mode="after")
    def _across_groups(self):
        _source_rules(self)
        _synthesis_rules(self)
        _evaluation_rules(self)
        return self

    def variant(self, name: str) -> Variant:
        """The classifier variant `name` (a one-line error naming the variants when there is none)."""
        need(
            name in self.train.variants,
            f"train.variants.{name}",
            f"is not a variant ({', '.join(self.train.variants)})",
        )
        return self.train.variants[name]


def _source_rules(p: Params) -> None:
    ds, kind = p.dataset, source_kind(p.raw.source)
    if kind == "demo":
        need(ds.lesion_bins is not None, "dataset.lesion_bins", "is required by the demo dataset")
    if kind != "folder":
        why = {
            "demo": "the demo",
            "csv": "a CSV source (its own columns are the metadata)",
            "npz": "an .npz source",
        }
        need(ds.metadata is None, "dataset.metadata", f"must be null for {why[kind]}")
    for key in ("header", "split_files"):
        need(
            kind == "csv" or not getattr(p.raw.csv, key),
            f"raw.csv.{key}",
            "applies to a CSV or list source only (raw.source: a .csv, .tsv or .txt file); remove it",
        )
    if kind in ("folder", "npz", "demo"):
        need(
            ds.group_by is None or ds.metadata is not None,
            "dataset.group_by",
            "names a column of dataset.metadata (or of a CSV source): set dataset.metadata to the CSV first",
        )


def _synthesis_rules(p: Params) -> None:
    methods, classes = p.synthesize.methods, p.dataset.classes
    need(
        methods.get("lesion_edit", 0) == 0 or p.dataset.lesion_bins is not None,
        "synthesize.methods.lesion_edit",
        "needs lesion-count grades (dataset.lesion_bins), which this dataset has not; "
        "use {diffusion: 1.0} (or gan)",
    )
    bank_grades = p.synthesize.lesion_edit.bank_grades
    need(
        bank_grades is None or set(bank_grades) <= set(classes),
        "synthesize.lesion_edit.bank_grades",
        "must name classes of dataset.classes (or be null for the upper half)",
    )
    # a method sampling the model this repository trains needs that generator trained
    samples_own = {
        "diffusion": p.synthesize.diffusion.backend == "unet"
        and p.synthesize.diffusion.model_dir == Diffusion().model_dir,
        "gan": p.synthesize.gan.model_dir == Gan().model_dir,
    }
    for name, own in samples_own.items():
        need(
            methods.get(name, 0) == 0 or not own or getattr(p.generators, name) is not None,
            f"synthesize.methods.{name}",
            f"samples models/generators/{name}, which nothing trains: add `{name}: {{}}` to "
            f"generators (stage train_generator@{name}), or point synthesize.{name}.model_dir at "
            "a trained model",
        )
    if p.generators.sd_lora is not None and p.generators.sd_lora.classes is not None:
        need(
            set(p.generators.sd_lora.classes) <= set(classes),
            "generators.sd_lora.classes",
            "must name classes of dataset.classes (or be null for every class)",
        )


def _evaluation_rules(p: Params) -> None:
    methods = p.synthesize.methods
    for name, spec in p.train.variants.items():
        need(
            spec.method is None or (spec.data == "balanced" and spec.method in methods),
            f"train.variants.{name}.method",
            "needs data: balanced and a method of synthesize.methods (remove the variant with its method)",
        )
    if not p.fuse.synthetic_in_eval:
        need(
            set(p.flip.splits) <= {"train"},
            "flip.splits",
            "may flip val/test only with fuse.synthetic_in_eval: true (they must stay real-only)",
        )

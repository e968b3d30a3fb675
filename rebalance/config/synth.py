"""The params schema's synthesis groups (`synthesize`, `generators`, `assess`), which
rebalance/config/schema.py gathers into one schema (defaults live here and nowhere else)."""

from __future__ import annotations

import difflib
import math
from importlib import metadata
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from rebalance.config.types import Fraction, Group, PositiveInt, UserPath, need

METHODS = ("lesion_edit", "diffusion", "gan", "command")  # built-in methods (rebalance/synth/<name>.py)
# the entry-point group of installed generators (rebalance/synth/plugins.py)
PLUGIN_GROUP = "rebalance.generators"


def plugin_names() -> tuple[str, ...]:
    """Names of the installed generator plugins (entry points of PLUGIN_GROUP; a built-in's name is
    the built-in's). Only the names: nothing is imported."""
    return tuple(sorted({ep.name for ep in metadata.entry_points(group=PLUGIN_GROUP)} - set(METHODS)))


def check_method(name: str, key: str) -> None:
    """A one-line error unless `name` is a built-in method or an installed generator plugin (the
    nearest name suggested)."""
    if name in METHODS:
        return
    plugins = plugin_names()
    near = difflib.get_close_matches(name, (*METHODS, *plugins), n=1, cutoff=0.6)
    hint = f"did you mean `{near[0]}`? " if near else ""
    need(
        name in plugins,
        key,
        f"is neither a built-in method nor an installed generator plugin; {hint}built-in: "
        f"{', '.join(METHODS)}; plugins (entry points {PLUGIN_GROUP}): "
        f"{', '.join(plugins) or 'none installed'}",
    )


class LesionEdit(Group):
    clusters: PositiveInt = 4  # KMeans clusters of candidate sources
    spread: Literal["proportional", "even"] = "proportional"  # the quota over clusters (the ACNEDIT study)
    sources: Literal["lower", "lower_or_equal"] = "lower"
    bank_grades: list[str] | None = None  # grades the lesion bank is cut from; null: the upper half
    bank_images: PositiveInt = 24  # train images cut into the bank
    bank_per_image: PositiveInt = 16  # lesions cut per bank image (at most)
    open_bin_span: PositiveInt = 30  # an open top bin [low, null] is treated as [low, low + span - 1]
    bin_margin: float = Field(0.15, ge=0, lt=0.5)  # target count this share of the bin inside its ends
    edge_margin: int = Field(3, ge=0)  # px of skin kept free along the skin's edge
    gap: float = Field(1.5, ge=0)  # px between blended disks and detected lesions
    ring: int = Field(2, ge=1)  # px: seam ring inpainted around each disk
    max_tries: PositiveInt = 4  # attempts (sub-seeds) per source
    max_sources: PositiveInt = 5  # sources tried per image before giving up


class Mask(Group):
    blobs: PositiveInt = 3  # random ellipses
    fraction: Fraction = 0.3  # of the image they cover


class StableDiffusion(Group):
    # inpaint (blob masks on a train image; model_dir an inpainting folder) | img2img (a train image
    # noised to `strength`, DA-Fusion) | text2img (from noise); the last two: a text-to-image folder
    mode: Literal["inpaint", "img2img", "text2img"] = "inpaint"
    model_dir: UserPath | None = None  # a local StableDiffusionInpaintPipeline folder (save_pretrained)
    lora: UserPath | None = None  # optional LoRA weights (needs peft)
    attributes: str | None = (
        "data/raw/labels.csv"  # per-image attributes for prompts (the ISIC 2024 SD+LoRA study)
    )
    prompt: str = (
        "a clinical close-up photo of {skin} skin with {severity} acne ({label}): {colour}, "
        "{size_shape}, {border} borders"
    )
    negative_prompt: str = "blurry, text, watermark, cartoon"
    resolution: int = Field(512, ge=8, multiple_of=8)
    steps: int = Field(25, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0)
    strength: float = Field(1.0, gt=0, le=1)


class Diffusion(Group):
    # unet (stage train_generator@diffusion) | sd (a local SD folder, sd.mode) | sd_inpaint (sd, inpaint)
    backend: Literal["unet", "sd", "sd_inpaint"] = "unet"
    model_dir: str = "models/generators/diffusion"
    # full: from noise | local: RePaint-style regeneration of masked regions of a train image |
    # img2img: a train image of the class noised to `strength`, then denoised toward the class (DA-Fusion)
    mode: Literal["full", "local", "img2img"] = "local"
    strength: float = Field(0.5, gt=0, le=1)  # img2img: share of the schedule re-run (1 = from noise)
    clusters: PositiveInt = 4  # local/img2img/sd_inpaint: KMeans clusters of a class's source images
    spread: Literal["proportional", "even"] = "proportional"  # the quota over those clusters
    scheduler: Literal["ddim", "dpm"] = "ddim"
    steps: int = Field(12, ge=1, le=1000)
    guidance: float = Field(3.0, ge=0)  # classifier-free guidance (1 = off)
    batch_size: PositiveInt = 32
    mask: Mask = Mask()
    output_size: PositiveInt | None = None  # null: dataset.image_size, else median train side (<= 512)
    sd: StableDiffusion = StableDiffusion()


class Gan(Group):
    model_dir: str = "models/generators/gan"  # trained by stage train_generator@gan
    batch_size: PositiveInt = 64
    output_size: PositiveInt | None = None  # null: dataset.image_size, else median train side (<= 512)


class Command(Group):
    """Method `command`: a user's command run once per batch (an API client, a generator of another
    framework; rebalance/synth/command.py). No shell: the command is split like a shell line
    (shlex) and `{class}`, `{seeds_file}` (one seed per line) and `{out_dir}` are replaced in each
    word; it must write `<out_dir>/<seed>.png` for each seed (a missing one leaves its slot empty)."""

    cmd: str | None = None  # e.g. "python gen.py --label {class} --seeds {seeds_file} --out {out_dir}"
    timeout_s: float = Field(600, gt=0)  # per batch: past it the command is killed and the run stops
    dollars_per_image: float = Field(0, ge=0)  # its price (an API's), recorded per image
    batch: PositiveInt = 16  # consecutive slots per call (an image's batch never depends on the run)
    # a folder holding the training_set.json record of the model it runs (rebalance/synth/provenance.py);
    # null: unknown, refused unless synthesize.allow_external_model: true
    training_set: UserPath | None = None


class Filter(Group):
    """Which generated images are kept, judged against the real val images of their class by the
    judge (stage judge, rebalance/synth/judge.py). A rejected image's slot is generated again with
    a new sub-seed, up to max_tries times, then left empty (metrics/filter.json)."""

    # reject an image whose judge probability of its class is below this percentile of the real
    # val images' (10: less like its class than 90% of real images are) and below 0.5
    min_class_percentile: float = Field(10, ge=0, le=100)
    # reject an image farther from its class's real train images (judge features) than this
    # percentile of the real val images are (99: farther than all but 1% of them)
    max_distance_percentile: float = Field(99, ge=0, le=100)
    # reject a near-copy of a real train image other than its own source (perceptual hash within
    # assess.near_copy_bits bits): memorised, not generated
    reject_near_copies: bool = True
    max_tries: int = Field(4, ge=0)  # new sub-seeds per slot before it is left empty


class Synthesize(Group):
    seed: int = 0  # part of every generated image's seed
    # A generator without a training_set.json record (an SD folder or LoRA from elsewhere) may have
    # seen val/test images: refused unless this is true (the data card then says so).
    allow_external_model: bool = False
    # sample in this many processes launched by accelerate (one per GPU; rebalance/core/ranks.py);
    # the images are the same bytes as with 1 process
    processes: int = Field(1, ge=1)
    methods: dict[str, Annotated[float, Field(ge=0)]]  # method -> share of each class's deficit
    lesion_edit: LesionEdit = LesionEdit()
    diffusion: Diffusion = Diffusion()
    gan: Gan = Gan()
    command: Command = Command()
    # options of installed generator plugins, by name: passed to the plugin, part of its cache keys
    plugins: dict[str, dict[str, Any]] = {}
    filter: Filter | None = Filter()  # null keeps every generated image

    @model_validator(mode="after")
    def _shares(self):
        m = self.methods
        need(bool(m), "synthesize.methods", "must map method names to shares, e.g. {lesion_edit: 1.0}")
        for name in m:
            check_method(name, f"synthesize.methods.{name}")
        need(
            m.get("command", 0) == 0 or self.command.cmd is not None,
            "synthesize.methods.command",
            "needs synthesize.command.cmd (the command that writes <out_dir>/<seed>.png per seed)",
        )
        total = sum(m.values())
        need(
            math.isclose(total, 1.0, abs_tol=1e-6),
            "synthesize.methods",
            f"shares must sum to 1 (got {total:g})",
        )
        return self


class DataParallel(Group):
    """A group that trains in `processes` data-parallel processes launched by accelerate (one per
    GPU; rebalance/core/ranks.py), `batch_size` the global batch, split equally among them. Each
    group declares both keys itself (a group's keys keep their order)."""

    KEY: ClassVar[str]  # the group's dotted key, for errors
    batch_size: int
    processes: int

    @model_validator(mode="after")
    def _even_batches(self):
        need(
            self.batch_size % self.processes == 0,
            f"{self.KEY}.batch_size",
            f"({self.batch_size}) must be a multiple of {self.KEY}.processes ({self.processes}): "
            "every process takes an equal part of each batch",
        )
        return self


class DiffusionTrain(DataParallel):  # the UNet of method diffusion (rebalance/synth/diffusion_core.py)
    KEY = "generators.diffusion"
    seed: int = 0
    resolution: int = Field(32, ge=8)
    channels: list[PositiveInt] = Field([32, 64, 64], min_length=1)
    layers_per_block: PositiveInt = 1
    attention: bool = True  # self-attention at the lowest resolution
    steps: PositiveInt = 500
    batch_size: PositiveInt = 32
    lr: float = Field(0.002, gt=0)
    ema_decay: float = Field(0.995, ge=0, lt=1)
    class_dropout: float = Field(0.1, ge=0, lt=1)  # label dropout, for classifier-free guidance
    hflip: bool = True
    processes: PositiveInt = 1  # data-parallel processes (DataParallel)

    @model_validator(mode="after")
    def _halvings(self):
        halvings = 2 ** (len(self.channels) - 1)
        need(
            self.resolution % halvings == 0,
            f"{self.KEY}.resolution",
            f"must be divisible by {halvings} (one halving per extra entry of channels)",
        )
        return self


class GanTrain(DataParallel):  # the GAN of method gan (rebalance/synth/gan_core.py)
    KEY = "generators.gan"
    seed: int = 0
    resolution: int = Field(32, ge=8)  # a power of two
    z_dim: PositiveInt = 64
    channels: PositiveInt = 32  # the widest layers have 8x this
    steps: PositiveInt = 600
    batch_size: PositiveInt = 32
    lr: float = Field(0.0002, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)  # the saved generator is this average of its weights
    hflip: bool = True
    processes: PositiveInt = 1  # data-parallel processes (DataParallel)
    # progressive growing: train at base_resolution first, then at each doubling up to resolution,
    # the steps split evenly across the phases, each new block faded in over its phase's first half
    progressive: bool = False
    base_resolution: int = Field(8, ge=4)  # the first phase's side, a power of two dividing resolution

    @model_validator(mode="after")
    def _growth(self):
        if not self.progressive:
            return self
        base, ratio = self.base_resolution, self.resolution // self.base_resolution
        need(
            base & (base - 1) == 0 and self.resolution % base == 0 and ratio & (ratio - 1) == 0,
            f"{self.KEY}.base_resolution",
            f"({base}) must be a power of two dividing resolution ({self.resolution}) by a power of two",
        )
        phases = ratio.bit_length()
        need(
            self.steps >= 2 * phases,
            f"{self.KEY}.steps",
            f"({self.steps}) must give each of the {phases} progressive phases at least 2 steps",
        )
        return self


class SdLora(DataParallel):
    """LoRA fine-tuning of a local SD 1.5 folder (rebalance/synth/sd_lora_core.py)."""

    KEY = "generators.sd_lora"
    model_dir: UserPath  # a local StableDiffusionPipeline folder (save_pretrained layout)
    classes: list[str] | None = None  # null: every class
    phase1_steps: int = Field(700, ge=0)  # UNet only
    phase2_steps: int = Field(700, ge=0)  # UNet + text encoder
    rank: PositiveInt = 4
    lr: float = Field(3e-5, gt=0)
    resolution: int = Field(128, ge=8, multiple_of=8)
    batch_size: PositiveInt = 4
    seed: int = 0
    processes: PositiveInt = 1  # data-parallel processes (DataParallel)


class Generators(Group):
    """The generators trained in this repository, one stage train_generator@<name> each (dvc.yaml
    iterates over the keys given): its model goes to models/generators/<name>. A generator left out
    is not trained; `{}` trains it with the defaults."""

    diffusion: DiffusionTrain | None = None
    gan: GanTrain | None = None
    sd_lora: SdLora | None = None

    @model_validator(mode="after")
    def _no_nulls(self):
        for name in self.model_fields_set:
            need(
                getattr(self, name) is not None,
                f"generators.{name}",
                "is null; remove the key to train no such generator, or give {} for the defaults",
            )
        return self

    def trained(self) -> list[str]:
        """The names of the generators this repository trains."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class Assess(Group):
    seed: int = 0
    image_size: int = Field(32, ge=16)
    epochs: PositiveInt = 15
    batch_size: PositiveInt = 64
    lr: float = Field(0.003, gt=0)
    width: PositiveInt = 16
    k: PositiveInt = 3  # neighbours for k-NN precision/recall
    near_copy_bits: int = Field(4, ge=0, le=63)  # perceptual-hash distance of a near-copy
    # per class and set: precision/recall, real-vs-synthetic AUC and the mean nearest-hash distance
    # use a seeded sample of at most this many images (near-copies: every image, always)
    max_images: PositiveInt = 10000
    grid: PositiveInt = 6  # images per row of the sample grids
    # a local folder of a Hugging Face DINOv2 or CLIP model (never downloaded): precision, recall,
    # density, coverage and the Fréchet distance in its embedding too (rebalance/synth/foundation.py)
    features: UserPath | None = None

"""Hypothesis strategies for the datasets users bring, written to a folder of class folders.

A drawn `Dataset` is a plan (class counts, each image's size, mode and format, duplicates, broken
files); `write` turns it into files with numpy's seeded generator, so hypothesis shrinks the plan
(fewer classes, fewer images, simpler modes) and never the pixels. `write` also returns what the
test needs to check the run against: which files were planted broken, which are copies of which.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from dicomgen import dataset, encoded
from hypothesis import strategies as st
from PIL import Image

# (width, height): strips of 1 px, tiny, square, wide, tall, large
SIZES = [(1, 24), (24, 1), (3, 3), (16, 16), (32, 32), (48, 32), (20, 64), (96, 96), (600, 40), (200, 150)]
MODES = ["L", "LA", "P", "RGB", "RGBA", "I;16", "CMYK"]
FORMATS = {  # what each format can hold
    "png": {"L", "LA", "P", "RGB", "RGBA", "I;16"},
    "jpg": {"L", "RGB", "CMYK"},
    "tif": {"L", "LA", "P", "RGB", "RGBA", "I;16", "CMYK"},
    "dcm": {"L", "I;16", "RGB"},
}
BROKEN = ["truncated", "empty", "text", "wrong_extension"]
CLASS_NAMES = ["mild", "moderate acne", "sévère", "level3"]


@dataclass(frozen=True)
class ImageSpec:
    size: tuple[int, int]
    mode: str
    fmt: str


@dataclass(frozen=True)
class Dataset:
    classes: list[str]
    images: dict[str, list[ImageSpec]]  # per class
    # (class, index, into class; None: its own): a copy of that class's index-th image
    exact_copies: list[tuple[str, int, str | None]] = field(default_factory=list)
    near_copies: list[tuple[str, int, str | None]] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)  # (class, kind)
    alike: str | None = None  # a class whose images are near-identical (generators land near them)
    seed: int = 0


@st.composite
def image_specs(draw) -> ImageSpec:
    mode = draw(st.sampled_from(MODES))
    fmt = draw(st.sampled_from(sorted(f for f, modes in FORMATS.items() if mode in modes)))
    return ImageSpec(draw(st.sampled_from(SIZES)), mode, fmt)


@st.composite
def datasets(draw, max_per_class: int = 40) -> Dataset:
    """2-4 classes of 3..max_per_class images each, often extremely imbalanced."""
    n = draw(st.integers(2, 4))
    classes = CLASS_NAMES[:n]
    counts = draw(st.lists(st.integers(3, max_per_class), min_size=n, max_size=n))
    images = {c: draw(st.lists(image_specs(), min_size=k, max_size=k)) for c, k in zip(classes, counts)}
    into = st.one_of(st.none(), st.sampled_from(classes))  # None: within its own class
    picks = st.tuples(st.sampled_from(classes), st.integers(0, 2), into)
    return Dataset(
        classes=classes,
        images=images,
        exact_copies=draw(st.lists(picks, max_size=2)),
        near_copies=draw(st.lists(picks, max_size=2)),
        broken=draw(st.lists(st.tuples(st.sampled_from(classes), st.sampled_from(BROKEN)), max_size=2)),
        alike=draw(st.one_of(st.none(), st.sampled_from(classes))),
        seed=draw(st.integers(0, 2**16)),
    )


def pixels(rng: np.random.Generator, spec: ImageSpec, base: np.ndarray | None = None) -> Image.Image:
    """A smooth image of the spec's size and mode (near `base`, an 8x8x3 seed, when given)."""
    w, h = spec.size
    seed = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8) if base is None else base
    rgb = Image.fromarray(seed).resize((w, h), Image.BICUBIC)
    if spec.mode == "I;16":
        grey = np.asarray(rgb.convert("L"), np.uint16) * 257  # the full 16-bit range
        return Image.fromarray(grey.astype(np.uint16))  # mode I;16
    return rgb.convert(spec.mode)


def encode(im: Image.Image, fmt: str) -> bytes:
    if fmt == "dcm":
        return dicom_bytes(im)
    buf = io.BytesIO()
    im.save(buf, format={"png": "PNG", "jpg": "JPEG", "tif": "TIFF"}[fmt])
    return buf.getvalue()


def dicom_bytes(im: Image.Image) -> bytes:
    values = np.asarray(im)
    return encoded(dataset(values, "RGB" if values.ndim == 3 else "MONOCHROME2"))


@dataclass
class Written:
    broken: set[str]  # class/file of each planted broken file
    same: list[set[str]]  # groups of class/file that are copies (exact or near) of each other


def write(ds: Dataset, root: Path) -> Written:
    """The dataset as root/<class>/<file>; what was planted, by path relative to root."""
    rng = np.random.default_rng(ds.seed)
    alike_seed = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    names: dict[str, list[str]] = {}
    drawn: dict[str, Image.Image] = {}  # each image as drawn, before encoding
    for label in ds.classes:
        (root / label).mkdir(parents=True)
        names[label] = []
        for i, spec in enumerate(ds.images[label]):
            base = None
            if label == ds.alike:  # each a faint variation of one image
                base = np.clip(alike_seed.astype(int) + rng.integers(-2, 3, (8, 8, 3)), 0, 255).astype(
                    np.uint8
                )
            name = f"{label}/img_{i:03d}.{spec.fmt}"
            drawn[name] = pixels(rng, spec, base)
            (root / name).write_bytes(encode(drawn[name], spec.fmt))
            names[label].append(name)
    same: list[set[str]] = []
    for kind, planted in (("copy", ds.exact_copies), ("near", ds.near_copies)):
        for k, (label, index, into) in enumerate(planted):
            src = names[label][index % len(names[label])]
            into = into or label
            if kind == "copy":  # the very same bytes under another name
                dst = f"{into}/copy_{k}_{Path(src).name}"
                (root / dst).write_bytes((root / src).read_bytes())
            elif drawn[src].mode != "I;16":  # (16-bit: windowed per image, so not a plain near-copy)
                dst = f"{into}/near_{k}_{Path(src).stem}.png"  # a little brighter: nearly the same picture
                rgb = np.asarray(drawn[src].convert("RGB")).astype(int)
                Image.fromarray(np.clip(rgb + 2, 0, 255).astype(np.uint8)).save(root / dst)
            else:
                continue
            same.append({src, dst})
    broken = set()
    for k, (label, kind) in enumerate(ds.broken):
        name = f"{label}/broken_{k}" + (".txt.png" if kind == "text" else ".png")
        good = encode(pixels(rng, ImageSpec((32, 32), "RGB", "png")), "png")
        data = {
            "truncated": good[: len(good) // 2],
            "empty": b"",
            "text": b"patient notes, not an image\n",
            "wrong_extension": encode(pixels(rng, ImageSpec((8, 8), "RGB", "jpg")), "jpg")[:40],
        }[kind]
        (root / name).write_bytes(data)
        broken.add(name)
    return Written(broken, [s for s in same if len(s) == 2])

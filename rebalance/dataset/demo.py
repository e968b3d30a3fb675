"""The built-in demo dataset: synthetic skin patches shaped like ACNE04.

Four grades with ACNE04's counts (513/633/182/129, times `raw.demo.scale`), 128x128 RGB, each
image holding a true number of acne lesions inside its grade's Hayashi bin. To make it a real
test of a detector and a classifier, images vary in skin tone (light to dark), lighting, pore
texture and grain, lesion type (papule, pustule, nodule) and size, and carry look-alikes that
are not lesions (freckles, moles) and sometimes a non-skin region (hair or backdrop).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion, gaussian_filter

from rebalance.core.errors import RebalanceError
from rebalance.core.images import save_jpeg
from rebalance.dataset import demo_render as lesions

ACNE04_COUNTS = (513, 633, 182, 129)
OPEN_BIN_SPAN = 30  # the top grade's bin is open-ended; the demo draws up to low + 29 lesions
# Skin tones from light to dark (roughly Fitzpatrick I to VI), RGB.
SKIN_TONES = np.array(
    [[250, 222, 200], [238, 196, 165], [222, 170, 130], [196, 138, 100], [150, 100, 70], [98, 64, 44]],
    dtype=np.float32,
)
LABEL_COLUMNS = [
    "path",
    "label",
    "lesions",
    "papules",
    "pustules",
    "nodules",
    "freckles",
    "moles",
    "skin_tone",
    "non_skin",
]


def class_sizes(classes: list[str], scale: float) -> dict[str, int]:
    """Images per class: ACNE04's counts times `scale` (at least 10 per class)."""
    if len(classes) != len(ACNE04_COUNTS):
        raise RebalanceError(
            f"params.yaml: the demo dataset has {len(ACNE04_COUNTS)} grades but dataset.classes "
            f"lists {len(classes)}; use four classes (level0..level3) or set raw.source to a folder"
        )
    return {c: max(10, round(n * scale)) for c, n in zip(classes, ACNE04_COUNTS)}


def file_names(classes: list[str], scale: float) -> list[tuple[str, str]]:
    """(name relative to data/raw, label) of every demo image, in a fixed order."""
    return [(f"{c}/{c}_{i:04d}.jpg", c) for c, n in class_sizes(classes, scale).items() for i in range(n)]


def skin_patch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float, tuple]:
    """A float RGB skin image with lighting and texture; returns (image, skin mask, tone, light)."""
    tone_pos = rng.uniform(0, len(SKIN_TONES) - 1)
    i = int(tone_pos)
    j = min(i + 1, len(SKIN_TONES) - 1)
    tone = SKIN_TONES[i] + (SKIN_TONES[j] - SKIN_TONES[i]) * (tone_pos - i)
    tone = tone * rng.normal(1.0, 0.03, 3)

    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    theta = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0.05, 0.2) * (np.cos(theta) * xx + np.sin(theta) * yy)
    shade -= rng.uniform(0.0, 0.2) * (xx**2 + yy**2)  # curvature of the face
    mottle = gaussian_filter(rng.normal(0, 1, (size, size)), 6)
    shade += 0.03 * mottle / (mottle.std() + 1e-6)
    img = tone[None, None, :] * shade[..., None]

    pores = gaussian_filter((rng.random((size, size)) < 0.025).astype(np.float32), 0.6)
    img *= 1 - 0.9 * pores[..., None] * rng.uniform(0.15, 0.3)

    skin = np.ones((size, size), dtype=bool)
    if rng.random() < 0.3:  # hair or backdrop along one edge
        depth = rng.uniform(0.12, 0.3) * size
        wobble = depth * 0.25 * np.sin(np.linspace(0, rng.uniform(2, 6), size) + rng.uniform(0, 6))
        edge = rng.integers(4)
        dist = np.rot90(np.mgrid[0:size, 0:size][0], edge).astype(float)
        region = dist < (depth + wobble)[None, :]
        if rng.random() < 0.6:
            colour = np.array([35, 26, 20]) * rng.uniform(0.6, 1.6)
            streaks = gaussian_filter(rng.normal(0, 1, (size, size)), (0.5, 4))
            region_img = colour[None, None, :] * (1 + 0.25 * streaks[..., None])
        else:
            colour = rng.uniform(60, 200, 3)
            region_img = np.broadcast_to(colour, (size, size, 3))
        img[region] = region_img[region]
        skin = ~region
    light = (-np.sin(theta), -np.cos(theta))
    return img.astype(np.float32), skin, float(tone_pos / (len(SKIN_TONES) - 1)), light


def render(rng: np.random.Generator, n_lesions: int, severity: float, size: int = 128):
    """One demo image with exactly `n_lesions` lesions; returns (uint8 image, attributes)."""
    img, skin, tone, light = skin_patch(rng, size)
    allowed = binary_erosion(skin, iterations=4)
    kinds = list(rng.choice(lesions.LESION_KINDS, size=n_lesions, p=lesions.lesion_kind_probs(severity)))
    spots = lesions.place(rng, allowed, kinds, taken=[])
    if len(spots) != n_lesions:  # no room: start again from a fresh patch
        return render(rng, n_lesions, severity, size)
    n_freckles, n_moles = int(rng.integers(0, 16)), int(rng.integers(0, 3))
    distractors = lesions.place(rng, allowed, ["freckle"] * n_freckles + ["mole"] * n_moles, spots)
    for spot in spots + distractors:
        lesions.draw(img, spot, light)
    img += gaussian_filter(rng.normal(0, 1, img.shape), (0.6, 0.6, 0)) * rng.uniform(2.0, 4.0)
    attrs = {
        "lesions": n_lesions,
        "papules": sum(s.kind == "papule" for s in spots),
        "pustules": sum(s.kind == "pustule" for s in spots),
        "nodules": sum(s.kind == "nodule" for s in spots),
        "freckles": sum(s.kind == "freckle" for s in distractors),
        "moles": sum(s.kind == "mole" for s in distractors),
        "skin_tone": round(tone, 3),
        "non_skin": int((~skin).any()),
    }
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), attrs


def write(out_dir: Path, classes: list[str], bins: dict, scale: float, size: int, seed: int) -> list[dict]:
    """Write every demo image under out_dir/<class>/ and return the rows of labels.csv."""
    rows = []
    counters: dict[str, int] = {}
    for name, label in file_names(classes, scale):
        grade = classes.index(label)
        index = counters[label] = counters.get(label, -1) + 1
        rng = np.random.default_rng([seed, grade, index])
        lo, hi = bins[label]
        hi = lo + OPEN_BIN_SPAN - 1 if hi == np.inf else hi
        array, attrs = render(rng, int(rng.integers(lo, hi + 1)), grade / (len(classes) - 1), size)
        save_jpeg(array, out_dir / name)
        rows.append({"path": name, "label": label, **attrs})
    return rows

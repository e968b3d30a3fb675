"""Rendering of acne lesions and look-alike spots on skin, colour-matched to where they land.

Used by the demo dataset (to paint whole images) and by the lesion-edit synthesis method (to add
lesions to real images). Each spot is drawn from the local skin colour, so it takes on the
destination's tone and lighting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Per-channel multipliers applied to the local skin colour at full strength. Lesions lower green
# and blue (redness, on any skin tone); freckles and moles darken without adding red.
COLOURS = {
    "papule": np.array([1.03, 0.60, 0.62]),
    "pustule": np.array([1.02, 0.62, 0.63]),
    "nodule": np.array([0.82, 0.48, 0.55]),
    "freckle": np.array([0.80, 0.72, 0.62]),
    "mole": np.array([0.42, 0.33, 0.30]),
}
PUS = np.array([252.0, 240.0, 205.0])
RADII = {
    "papule": (1.6, 3.0),
    "pustule": (2.2, 3.6),
    "nodule": (3.5, 5.5),
    "freckle": (0.8, 1.5),
    "mole": (1.8, 3.4),
}
LESION_KINDS = ("papule", "pustule", "nodule")


@dataclass(frozen=True)
class Spot:
    kind: str
    y: float
    x: float
    r: float
    strength: float


def lesion_kind_probs(severity: float) -> np.ndarray:
    """Probabilities of papule/pustule/nodule; more pustules and nodules as severity (0..1) grows."""
    nodule = 0.04 + 0.16 * severity
    pustule = 0.22 + 0.13 * severity
    return np.array([1.0 - nodule - pustule, pustule, nodule])


def random_spot(rng: np.random.Generator, kind: str, y: float, x: float) -> Spot:
    lo, hi = RADII[kind]
    strength = rng.uniform(0.55, 0.85) if kind in LESION_KINDS else rng.uniform(0.5, 0.8)
    return Spot(kind, y, x, rng.uniform(lo, hi), strength)


def place(
    rng: np.random.Generator,
    allowed: np.ndarray,
    kinds: list[str],
    taken: list[Spot],
    margin: int = 5,
    gap: float = 2.5,
    tries: int = 60,
) -> list[Spot]:
    """Place one spot per kind at random allowed pixels, apart from each other and from `taken`.

    Spots that find no room after `tries` attempts are dropped, so callers check the length.
    """
    h, w = allowed.shape
    placed: list[Spot] = []
    ys, xs = np.nonzero(allowed[margin : h - margin, margin : w - margin])
    if len(ys) == 0:
        return placed
    ys, xs = ys + margin, xs + margin
    centres = np.array([[s.y, s.x] for s in taken], dtype=float).reshape(-1, 2)
    radii = np.array([s.r for s in taken], dtype=float)
    for kind in kinds:
        for _ in range(tries):
            i = rng.integers(len(ys))
            spot = random_spot(rng, kind, ys[i] + rng.uniform(-0.5, 0.5), xs[i] + rng.uniform(-0.5, 0.5))
            if len(radii):
                d = np.hypot(centres[:, 0] - spot.y, centres[:, 1] - spot.x)
                if np.any(d < radii + spot.r + gap):
                    continue
            placed.append(spot)
            centres = np.vstack([centres, [spot.y, spot.x]])
            radii = np.append(radii, spot.r)
            break
    return placed


def draw(img: np.ndarray, spot: Spot, light: tuple[float, float] = (-0.7, -0.7)) -> np.ndarray:
    """Paint `spot` into the float HxWx3 image in place; return its alpha footprint (HxW)."""
    h, w, _ = img.shape
    pad = int(np.ceil(spot.r * 2.2)) + 1
    y0, y1 = max(0, int(spot.y) - pad), min(h, int(spot.y) + pad + 1)
    x0, x1 = max(0, int(spot.x) - pad), min(w, int(spot.x) + pad + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d2 = ((yy - spot.y) ** 2 + (xx - spot.x) ** 2) / spot.r**2
    patch = img[y0:y1, x0:x1]
    ring = (d2 > 2.0) & (d2 < 4.0)
    skin = patch[ring].mean(axis=0) if ring.any() else patch.reshape(-1, 3).mean(axis=0)

    if spot.kind == "mole":
        alpha = spot.strength * np.clip(1.6 - d2, 0, 1)  # sharp edge
    elif spot.kind == "nodule":
        alpha = spot.strength * np.exp(-0.9 * d2)  # deep, diffuse
    else:
        alpha = spot.strength * np.exp(-1.5 * d2)
    colour = skin * COLOURS[spot.kind]
    out = patch * (1 - alpha[..., None]) + colour * alpha[..., None]

    if spot.kind == "pustule":  # yellow-white head
        head = np.clip(1.0 - d2 / 0.25, 0, 1) * 0.85
        out = out * (1 - head[..., None]) + PUS * (skin / 255.0) ** 0.3 * head[..., None]
    if spot.kind in LESION_KINDS:  # raised: a small highlight toward the light
        hy, hx = spot.y + light[0] * spot.r * 0.35, spot.x + light[1] * spot.r * 0.35
        hl = np.exp(-((yy - hy) ** 2 + (xx - hx) ** 2) / (0.35 * spot.r) ** 2) * 0.12
        out = out + (255.0 - out) * hl[..., None]

    img[y0:y1, x0:x1] = out
    footprint = np.zeros((h, w), dtype=np.float32)
    footprint[y0:y1, x0:x1] = alpha
    return footprint

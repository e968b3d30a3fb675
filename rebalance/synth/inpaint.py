"""Local regeneration helpers shared by the diffusion backends: random blob masks, resizing, and
composing a generated image into the original so that pixels outside the mask keep their bytes."""

from __future__ import annotations

import numpy as np
from PIL import Image


def blob_mask(rng: np.random.Generator, size: int, blobs: int, fraction: float) -> np.ndarray:
    """A boolean size x size mask of `blobs` random ellipses covering about `fraction` of it."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    mask = np.zeros((size, size), bool)
    area = fraction * size * size / blobs
    for _ in range(blobs):
        aspect = rng.uniform(0.6, 1.6)
        ry = np.sqrt(area / np.pi * aspect)
        rx = np.sqrt(area / np.pi / aspect)
        cy, cx = rng.uniform(ry, size - ry), rng.uniform(rx, size - rx)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 uint8 array to size x size (bicubic)."""
    if array.shape[0] == size and array.shape[1] == size:
        return array
    return np.asarray(Image.fromarray(array).resize((size, size), Image.BICUBIC), dtype=np.uint8)


def downsample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A mask at `size` that covers every low-res pixel touching the full-res mask."""
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BOX)
    return np.asarray(im) > 0


def compose(original: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Generated pixels inside the mask, the original's exact bytes outside it."""
    return np.where(mask[..., None], generated, original).astype(np.uint8)

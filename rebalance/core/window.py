"""16-bit and float pixel values (X-rays, DICOM) to 8 bit: `percentile` maps the 0.5th..99.5th
percentile of an image's values linearly to 0..255, `minmax` its full range (`raw.window`)."""

from __future__ import annotations

import numpy as np

WINDOWS = ("percentile", "minmax")  # raw.window
PERCENTILES = (0.5, 99.5)  # window `percentile`: these percentiles of the values become 0 and 255
_window = "percentile"  # the mode used when none is given (set_window)


def set_window(mode: str) -> None:
    """How 16-bit and float images are brought to 8 bit when no mode is given: `percentile` or `minmax`."""
    global _window
    if mode not in WINDOWS:
        raise ValueError(f"unknown window {mode!r}; one of {', '.join(WINDOWS)}")
    _window = mode


def window_8bit(values: np.ndarray, mode: str | None = None) -> np.ndarray:
    """A 2-D array of any numeric type as uint8: its window (see the module doc) to 0..255, linearly.

    Monotone in the values; NaN becomes 0, +inf 255. A window of zero width (a flat image, or
    one whose percentiles meet) widens to the full range; a constant image becomes 0.
    """
    a = np.asarray(values, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, np.uint8)
    lo, hi = finite.min(), finite.max()
    if (mode or _window) == "percentile":
        plo, phi = np.percentile(finite, PERCENTILES)
        if phi > plo:
            lo, hi = plo, phi
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def window_8bit_rgb(values: np.ndarray, mode: str | None = None) -> np.ndarray:
    """An RGB array of any numeric type as uint8 (8-bit stays as is, deeper ones windowed jointly)."""
    if values.dtype == np.uint8:
        return values
    flat = window_8bit(values.reshape(values.shape[0], -1), mode)
    return flat.reshape(values.shape)

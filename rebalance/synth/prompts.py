"""The structured prompts of the ISIC 2024 SD+LoRA study: one text per image that names its lesion
colour, size/shape, border and surrounding skin tone and its class's severity, filled into a
template (`synthesize.diffusion.sd.prompt`). The words come from per-image attributes in a CSV
(`synthesize.diffusion.sd.attributes`, keyed by the `path` column relative to data/raw): columns
`lesion_colour`/`lesion_color`, `size_shape`, `border`, `skin_tone` (text, or a number 0..1 from
light to dark, as the demo's labels.csv) and lesion counts `papules`/`pustules`/`nodules` (the
demo's), from which colour, size/shape and border are derived when not given. `prompt_for` is the
one prompt builder: the SD backend of method diffusion (rebalance/synth/diffusion_sd.py) samples
with it and stage train_generator@sd_lora trains the LoRA with it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd

from rebalance.core import paths
from rebalance.core.errors import RebalanceError

SKIN_WORDS = ["very light", "light", "light-medium", "medium", "brown", "dark brown"]  # Fitzpatrick I..VI
SEVERITY_WORDS = ["clear to almost clear", "mild", "moderate", "severe", "very severe"]
KIND_WORDS = {  # dominant lesion kind -> (colour, size/shape, border)
    "papules": ("red", "small raised round papules", "well-defined"),
    "pustules": ("yellow-white pus-filled with red rims", "small dome-shaped pustules", "well-defined"),
    "nodules": ("deep red to purple", "large deep nodules", "diffuse"),
}


def skin_word(value: Any) -> str:
    """Skin tone as words: a number 0..1 (light..dark) maps onto six Fitzpatrick-like steps."""
    try:
        tone = float(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") and not pd.isna(value) else "natural"
    return SKIN_WORDS[min(len(SKIN_WORDS) - 1, max(0, int(tone * len(SKIN_WORDS))))]


def prompt_for(attrs: dict[str, Any], label: str, classes: list[str], template: str) -> str:
    """The structured prompt of one image: colour, size/shape, border, skin tone, severity."""
    grade = classes.index(label) / max(1, len(classes) - 1)
    severity = SEVERITY_WORDS[round(grade * (len(SEVERITY_WORDS) - 2)) + (1 if grade > 0 else 0)]
    counts = {k: float(attrs[k]) for k in KIND_WORDS if k in attrs and str(attrs[k]) not in ("", "nan")}
    colour, size_shape, border = (
        KIND_WORDS[max(counts, key=counts.get)]
        if any(counts.values())
        else ("red", "small papules", "well-defined")
    )
    words = {
        "severity": severity,
        "label": label,
        "skin": skin_word(attrs.get("skin_tone")),
        "colour": attrs.get("lesion_colour") or attrs.get("lesion_color") or colour,
        "size_shape": attrs.get("size_shape") or size_shape,
        "border": attrs.get("border") or border,
    }
    return template.format(**{k: str(v) for k, v in words.items()})


@functools.lru_cache(maxsize=4)
def attributes(path: str | None) -> dict[str, dict]:
    """The attributes CSV as {path: row} (empty without one, or when data/raw/labels.csv, the
    default, does not exist: prompts then come from the class alone)."""
    if not path:
        return {}
    if not Path(path).exists() and Path(path) == paths.LABELS:
        return {}  # a source without per-image attributes: prompts from the class alone
    if not Path(path).exists():
        raise RebalanceError(f"{path}: attributes CSV not found (synthesize.diffusion.sd.attributes)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "path" not in table.columns:
        raise RebalanceError(f"{path}: attributes CSV needs a `path` column (relative to data/raw)")
    return {r["path"]: r for r in table.to_dict("records")}

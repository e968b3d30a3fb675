"""Lesion-count grading (Hayashi bins, as ACNE04): which grade a lesion count belongs to."""

from __future__ import annotations

import math

from rebalance.config import Params


def lesion_bins(params: Params) -> dict[str, tuple[int, float]] | None:
    """Per-class inclusive lesion-count bins, with an open upper end as infinity; None if ungraded."""
    bins = params.dataset.lesion_bins
    if bins is None:
        return None
    return {c: (lo, math.inf if hi is None else hi) for c, (lo, hi) in bins.items()}


def grade_of(count: int, bins: dict[str, tuple[int, float]]) -> str | None:
    """The class whose lesion bin holds `count` (None if it falls between bins)."""
    for c, (lo, hi) in bins.items():
        if lo <= count <= hi:
            return c
    return None

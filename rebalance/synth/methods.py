"""The synthesis methods by name: what `synthesize.methods` may name (the params schema lists the
same names; a test keeps them in step). Each is imported only when a run uses it (torch, OpenCV)."""

from __future__ import annotations

from collections.abc import Callable

from rebalance.core.errors import RebalanceError
from rebalance.synth.base import Context, Method


def _lesion_edit(ctx: Context) -> Method:
    from rebalance.synth.lesion_edit import LesionEditor

    return LesionEditor(ctx)


def _diffusion(ctx: Context) -> Method:
    from rebalance.synth.diffusion import DiffusionSampler

    return DiffusionSampler(ctx)


def _gan(ctx: Context) -> Method:
    from rebalance.synth.gan import GanSampler

    return GanSampler(ctx)


REGISTRY: dict[str, Callable[[Context], Method]] = {
    "lesion_edit": _lesion_edit,
    "diffusion": _diffusion,
    "gan": _gan,
}


def prepare(name: str, ctx: Context) -> Method:
    """The method `name`, ready to generate images for this run."""
    if name not in REGISTRY:
        raise RebalanceError(
            f"params.yaml: synthesize.methods names unknown method {name!r}; "
            f"available: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name](ctx)

"""The synthesis methods by name (the params schema lists the same names; a test keeps them in step)."""

from __future__ import annotations

from rebalance.core.errors import RebalanceError
from rebalance.synth.base import Context, Method

NAMES = ("lesion_edit", "diffusion", "gan")


def prepare(name: str, ctx: Context) -> Method:
    """The method `name`, ready to generate images for this run."""
    from rebalance.synth import diffusion, gan, lesion_edit  # here, not above: they load torch and OpenCV

    classes = {
        "lesion_edit": lesion_edit.LesionEditor,
        "diffusion": diffusion.DiffusionSampler,
        "gan": gan.GanSampler,
    }
    if name not in classes:
        raise RebalanceError(
            f"params.yaml: synthesize.methods names unknown method {name!r}; "
            f"available: {', '.join(sorted(classes))}"
        )
    return classes[name](ctx)

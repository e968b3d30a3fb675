"""The synthesis methods by name: what `synthesize.methods` may name (the params schema lists the
same names; a test keeps them in step), and the installed generator plugins (entry points
`rebalance.generators`, rebalance/synth/plugins.py). Each is imported only when a run uses it
(torch, OpenCV, a plugin's package)."""

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


def _command(ctx: Context) -> Method:
    from rebalance.synth.command import CommandRunner

    return CommandRunner(ctx)


REGISTRY: dict[str, Callable[[Context], Method]] = {
    "lesion_edit": _lesion_edit,
    "diffusion": _diffusion,
    "gan": _gan,
    "command": _command,
}


def prepare(name: str, ctx: Context) -> Method:
    """The method `name` (a built-in, else an installed plugin), ready to generate images for this run."""
    if name in REGISTRY:
        return REGISTRY[name](ctx)
    from rebalance.config.synth import plugin_names
    from rebalance.synth.plugins import PluginMethod

    if name not in plugin_names():
        raise RebalanceError(
            f"params.yaml: synthesize.methods names unknown method {name!r}; built-in: "
            f"{', '.join(REGISTRY)}; plugins: {', '.join(plugin_names()) or 'none installed'}"
        )
    return PluginMethod(name, ctx)

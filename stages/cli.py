"""The `rebalance` command line. No logic of its own: it calls the modules under stages/."""

from __future__ import annotations

import json
import sys

import click

from stages import params as params_mod, plan
from stages.errors import RebalanceError


class Group(click.Group):
    """Report a RebalanceError as one line on stderr, exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RebalanceError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)


@click.group(cls=Group)
def main() -> None:
    """rebalance: balanced, versioned, measured releases of an image dataset."""


@main.command("plan")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def plan_cmd(params_path: str, fmt: str) -> None:
    """Per-class counts and the balancing plan, computed on the train split."""
    params = params_mod.load(params_path)
    counts = plan.counts_json(plan.build(params, plan.real_images(params)))
    if fmt == "json":
        click.echo(json.dumps(counts, indent=2))
        return
    est = counts["estimate"]
    click.echo(f"Balancing plan for {params['dataset']['name']} (train split, target "
               f"{params['count']['target']['strategy']})\n")
    click.echo(plan.balance_table(counts))
    click.echo(f"\nTo generate: {est['images']} images, estimated {est['seconds']:.0f} s, ${est['dollars']:.2f}\n")
    click.echo("Real images per split\n")
    click.echo(plan.split_table(counts))


def _not_yet(name: str) -> None:
    raise RebalanceError(f"`rebalance {name}` is not implemented yet")


@main.command()
@click.argument("version")
def release(version: str) -> None:
    """Gate, document, tag and push a release (not implemented yet)."""
    _not_yet("release")


@main.command()
def releases() -> None:
    """List published releases with headline metrics (not implemented yet)."""
    _not_yet("releases")


@main.command()
@click.argument("rev_a")
@click.argument("rev_b")
def compare(rev_a: str, rev_b: str) -> None:
    """Counts, params and metrics of two revisions side by side (not implemented yet)."""
    _not_yet("compare")

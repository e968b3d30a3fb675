"""The `rebalance` command line. No logic of its own: it calls the library's modules."""

from __future__ import annotations

import json
import os
import sys

import click

from rebalance import config, registry
from rebalance.core.errors import RebalanceError
from rebalance.dataset import plan


class Group(click.Group):
    """Report a RebalanceError as one line on stderr, exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RebalanceError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)


# the libraries whose versions decide outputs (images, models, metrics) or what a source can be read
DECIDING = [
    "torch", "torchvision", "timm", "diffusers", "transformers", "peft", "accelerate", "numpy", "scipy",
    "scikit-learn", "pillow", "opencv-python-headless", "imagehash", "pydicom", "pylibjpeg",
    "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "pandas", "dvc",
]  # fmt: skip


def _print_version(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib import metadata
    from platform import python_version

    from rebalance.core.code import versions

    click.echo(f"rebalance {metadata.version('rebalance')} (Python {python_version()})")
    for name, version in versions(*DECIDING).items():
        click.echo(f"  {name} {version}")
    ctx.exit()


@click.group(cls=Group)
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
    help="Print the versions of rebalance and of the libraries that decide its outputs, and exit.",
)  # fmt: skip
def main() -> None:
    """rebalance: balanced, versioned, measured releases of an image dataset."""


def _enter_repo(ctx: click.Context, _param, value: str | None) -> None:
    """-C/--repo: run as if started in that folder (as `git -C`)."""
    if value is None or ctx.resilient_parsing:
        return
    if not os.path.isdir(value):
        raise RebalanceError(f"{value}: not a folder; give -C/--repo the repository's folder")
    os.chdir(value)


repo_option = click.option(
    "-C", "--repo", type=str, default=None, expose_value=False, is_eager=True, callback=_enter_repo,
    help="The repository's folder (default: the current one).",
)  # fmt: skip
FORMATS = ["md", "table", "json"]  # md: Markdown tables (read as they are in a terminal); table: the same
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True,
    help="md (Markdown tables; `table` is the same) or json.",
)  # fmt: skip


@main.command("plan")
@repo_option
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@format_option
def plan_cmd(params_path: str, fmt: str) -> None:
    """Per-class counts and the balancing plan, computed on the train split."""
    echo_plan(config.load(params_path), fmt)


def echo_plan(params: config.Params, fmt: str = "md") -> None:
    """Print the plan of `params` (`rebalance plan`, and `rebalance init` for the params it proposes)."""
    counts = plan.counts_json(plan.build(params, plan.real_images(params), plan.measured_speed()))
    if fmt == "json":
        click.echo(json.dumps(counts, indent=2))
        return
    est = counts["estimate"]
    click.echo(
        f"Balancing plan for {params.dataset.name} (train split, target {params.count.target.strategy})\n"
    )
    click.echo(plan.balance_table(counts))
    click.echo(
        f"\nTo generate: {est['images']} images, estimated {est['seconds']:.0f} s, ${est['dollars']:.2f}"
    )
    click.echo("\n".join(f"  {line}" for line in plan.estimate_lines(counts)) + "\n")
    for warning in plan.ratio_warnings(counts, params.count.max_synthetic_ratio):
        click.echo(f"warning: {warning}\n")
    click.echo("Real images per split\n")
    click.echo(plan.split_table(counts))
    click.echo("\n" + plan.split_notes(counts))


@main.command("init")
@repo_option
@click.argument("source")
@click.option(
    "--merge", "merges", multiple=True, metavar="FILE",
    help="A params overlay merged after the detected keys (repeatable, in order): examples/params/*.yaml.",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite an existing params file that differs.")
@click.option("--dry-run", is_flag=True, help="Print the summary, the diff and the plan; write nothing.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--no-plan", is_flag=True, help="Skip the plan (it reads and verifies every image).")
def init_cmd(
    source: str, merges: tuple[str, ...], force: bool, dry_run: bool, params_path: str, no_plan: bool
) -> None:
    """Inspect SOURCE (class folders, split folders, a CSV or image list, a MedMNIST .npz) and
    write the params.yaml that reads it: classes, split, groups, columns, methods that fit.

    SOURCE and each --merge FILE are relative to the repository (-C). The summary and a diff
    against the params file come first; an existing file that differs is replaced only with --force."""
    from pathlib import Path

    from rebalance import init
    from rebalance.core import atomic

    proposal = init.build(source, params_path, merges)
    click.echo(init.summary(proposal.found) + "\n")
    for note in proposal.notes:
        click.echo(f"note: {note}")
    old_name = params_path if proposal.current is not None else proposal.base_name
    diff = init.render_diff(
        proposal.current or proposal.base, proposal.params, old_name, f"{params_path} (new)"
    )
    exists = Path(params_path).exists()
    if exists and proposal.current == proposal.params:
        click.echo(f"{params_path} already holds these values; nothing to write")
    else:
        click.echo(f"Changes to {old_name} (its values; comments are not kept):")
        click.echo(diff or "(no change in values)")
        if dry_run:
            click.echo(f"dry run: {params_path} not written")
        elif exists and not force:
            raise RebalanceError(f"{params_path} exists; rerun with --force to write it")
        else:
            atomic.write_text(params_path, init.header(source, merges) + init.render(proposal.params))
            click.echo(f"wrote {params_path}")
    if no_plan:
        click.echo("\nNext: `rebalance plan` (the balancing plan), then `dvc repro`.")
        return
    click.echo("")
    try:
        echo_plan(proposal.model)
    except RebalanceError as err:
        written = "" if dry_run else f"{params_path} holds these params; "
        raise RebalanceError(
            f"the plan of these params fails: {err} ({written}fix it, then `rebalance plan`)"
        ) from None


@main.command()
@repo_option
@click.argument("version")
@click.option("--message", "-m", default=None, help="Tag message and data card summary.")
@click.option("--dry-run", is_flag=True, help="Check and print the data card; push, commit, tag nothing.")
@click.option("--remote", "-r", default=None, help="DVC remote (default: release.remote, else the default).")
@click.option(
    "--new-test-set",
    is_flag=True,
    help="Allow a test set unlike the previous release's (recorded).",
)
def release(version: str, message: str | None, dry_run: bool, remote: str | None, new_test_set: bool) -> None:
    """Gate, document, push and tag release VERSION (semver) as <dataset.name>@vVERSION."""
    registry.release(
        version, message=message, dry_run=dry_run, remote=remote, echo=click.echo, new_test_set=new_test_set
    )


@main.command()
@repo_option
@format_option
def releases(fmt: str) -> None:
    """List release tags with date and headline metrics (read from git at each tag)."""
    found = registry.list_releases()
    click.echo(json.dumps(found, indent=2) if fmt == "json" else registry.releases_table(found))


@main.command()
@repo_option
@click.argument("rev_a")
@click.argument("rev_b")
@format_option
@click.option(
    "--allow-different-test-sets", is_flag=True, help="Show metric deltas even across different test sets."
)
def compare(rev_a: str, rev_b: str, fmt: str, allow_different_test_sets: bool) -> None:
    """Counts, params and metrics of two revisions (tags, commits) side by side, B - A deltas."""
    result = registry.compare(rev_a, rev_b, allow_different_test_sets=allow_different_test_sets)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(registry.compare_markdown(result), nl=False)


def _serve_page(title: str, make_app, host: str, port: int, open_browser: bool) -> None:
    """A local page over the built release: its tokened URL printed, served until Ctrl-C."""
    from rebalance.core import paths
    from rebalance.review import server

    if not (paths.FUSED / "manifest.csv").is_file():
        raise RebalanceError(f"{paths.FUSED}/manifest.csv not found; run `dvc repro` (or `dvc pull`) first")
    token = server.new_token()
    srv = server.serve(make_app(token), host, port)
    url = f"http://{host}:{srv.server_port}/?token={token}"
    click.echo(f"{title}: {url}  (Ctrl-C stops)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


def _serve(mode: str, host: str, port: int, reviewer: str, open_browser: bool) -> None:
    from pathlib import Path

    from rebalance.review import server

    params = config.load()
    title = "Review" if mode == "review" else "Reader study"
    make_app = lambda token: server.create_app(Path("."), params, token, mode, reviewer)  # noqa: E731
    _serve_page(title, make_app, host, port, open_browser)


@main.command()
@repo_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep local).")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free one).")
@click.option("--reviewer", default="", help="Name recorded with each decision (editable on the page).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
def review(host: str, port: int, reviewer: str, open_browser: bool) -> None:
    """Web page to accept or reject each synthetic image of data/fused before it ships.

    Decisions are appended to reviews/<dataset.name>.csv; a rejected image is left out and its slot
    regenerated with a new sub-seed by the next `dvc repro`."""
    _serve("review", host, port, reviewer, open_browser)


@main.command("reader-study")
@repo_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep local).")
@click.option("--port", default=8766, show_default=True, help="Port (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
def reader_study(host: str, port: int, open_browser: bool) -> None:
    """Blinded real-vs-synthetic study (review.reader_study in params.yaml), each reader on their own.

    Answers go to metrics/reader_study_answers.csv; per-reader accuracy, the pooled accuracy with
    its 95% interval and Cohen's/Fleiss' kappa to metrics/reader_study.json."""
    _serve("study", host, port, "", open_browser)


@main.command()
@repo_option
@click.option("--annotator", default="", help="Name recorded with each label (editable on the page).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep local).")
@click.option("--port", default=8767, show_default=True, help="Port (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--agreement", is_flag=True, help="Print Cohen's kappa per attribute of two annotators; exit.")
def annotate(annotator: str, host: str, port: int, open_browser: bool, agreement: bool) -> None:
    """Web page to label each real train image of the classes that get synthetic images with its
    attributes (annotate.attributes: lesion colour, size/shape, border, skin tone) for the SD prompts.

    Labels go to annotations/<dataset.name>.csv, one row per image and annotator; name that file in
    synthesize.diffusion.sd.attributes to make the prompts from them."""
    from pathlib import Path

    from rebalance.review import annotate as labelling

    params = config.load()
    if agreement:
        table = labelling.read(labelling.path_for(params))
        click.echo(labelling.agreement_table(labelling.agreements(table, list(params.annotate.attributes))))
        return
    make_app = lambda token: labelling.create_app(Path("."), params, token, annotator)  # noqa: E731
    _serve_page("Annotate", make_app, host, port, open_browser)

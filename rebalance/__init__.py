"""rebalance: turn an imbalanced image dataset into balanced, versioned, measured releases.

The library the stage scripts (`stages/`) call and consumers import: core/ (paths, manifest, the
one image decoder, params), dataset/ (sources, split, plan, shards), synth/ (the generators and
their quality), learn/ (classifiers, metrics, evidence), registry/ (releases, cards, remotes),
review/ (the web app), and cli.py (the `rebalance` command).

`rebalance.open_release(repo, rev, split)` opens a release as a torch Dataset
(rebalance/registry/consume.py); it is imported on first use, so `import rebalance` stays cheap.
"""

from __future__ import annotations


def __getattr__(name: str):
    """`rebalance.open_release`, imported on first use (PEP 562: it needs torch and DVC)."""
    if name == "open_release":
        import importlib

        return importlib.import_module("rebalance.registry.consume").open_release
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

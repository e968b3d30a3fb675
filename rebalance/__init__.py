"""rebalance: turn an imbalanced image dataset into balanced, versioned, measured releases.

The library the stage scripts (`stages/`) call and consumers import: core/ (paths, manifest, the
one image decoder, params), dataset/ (sources, split, plan, shards), synth/ (the generators and
their quality), learn/ (classifiers, metrics, evidence), registry/ (releases, cards, remotes),
review/ (the web app), and cli.py (the `rebalance` command).
"""

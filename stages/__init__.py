"""rebalance: turn an imbalanced image dataset into balanced, versioned, measured releases.

`stages/` holds only the stage entry points (`python -m stages.<name>`) and the `rebalance`
command line (cli.py); the library lives in the sub-packages core/, dataset/, synth/, learn/ and
registry/ (see the README's Architecture section).
"""

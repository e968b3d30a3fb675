"""The DVC stage scripts, one per stage of dvc.yaml (`python -m stages.<name>`): each reads the
params, calls the `rebalance` library and writes its outputs. Nothing here is imported by the
library or by another stage."""

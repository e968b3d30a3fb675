"""params.yaml as typed config: the schema (one place for defaults and the rules that tie keys
together), its loader and its one-line errors. `rebalance.config.load()` gives the `Params` model;
the library takes it, or the group it needs, never a dict."""

from rebalance.config.loader import ParamsError, load, validate
from rebalance.config.schema import METHODS, SPLITS, Params, Variant, official_split, source_kind

__all__ = [
    "METHODS", "SPLITS", "Params", "ParamsError", "Variant", "load", "official_split", "source_kind",
    "validate",
]  # fmt: skip

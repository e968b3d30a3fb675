"""The one loader of params.yaml: parse, validate the whole file against the schema, fill defaults.

`load()` returns the typed `Params` model (rebalance/config/schema.py), every group and key present
with its default. Any mistake is one line naming the key and the fix (YAML errors: the line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rebalance.config import errors
from rebalance.config.schema import Params
from rebalance.config.types import Rule
from rebalance.core.errors import RebalanceError


class ParamsError(RebalanceError):
    pass


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{where}: invalid YAML ({problem}); fix that line") from None
    return validate(raw or {}, str(path))


def validate(given: dict[str, Any], where: str = "params.yaml") -> Params:
    """Check `given` (params.yaml's mapping) against the schema and its rules."""
    if not isinstance(given, dict):
        raise ParamsError(f"{where}: must be a mapping of groups (dataset, raw, count, ...)")
    try:
        return Params.model_validate(given)
    except ValidationError as err:
        raise ParamsError(f"{where}: {errors.describe(err.errors(), given)}") from None
    except Rule as rule:
        raise ParamsError(f"{where}: {rule}") from None

"""pydantic's validation errors of params.yaml as one line: the dotted key, what is wrong, the fix
(a misspelt key gets the nearest known one). Used by rebalance/config/loader.py."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from rebalance.config.schema import Params


def describe(errors: list[dict[str, Any]], given: dict[str, Any]) -> str:
    """One line for the first of pydantic's errors."""
    return _describe(_first(errors), given)


BRANCHES = ("str", "int", "float", "bool")  # pydantic's tags of a union's plain branches


def _key(loc: tuple) -> list[str]:
    """A pydantic error location without its validator and union-branch tags (`list[...]`, `str`)."""
    tags = ("function-", "constrained-")
    return [str(p) for p in loc if not str(p).startswith(tags) and "[" not in str(p) and p not in BRANCHES]


def _first(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The first error; for a key that takes one of several forms (a name or a list of names), the
    error of the form the value was given in rather than "not a valid <other form>"."""
    key = _key(errors[0]["loc"])
    same = [e for e in errors if _key(e["loc"])[: len(key)] == key]
    return next((e for e in same if not e["type"].endswith("_type")), errors[0])


def _describe(error: dict[str, Any], given: dict[str, Any]) -> str:
    """One line for pydantic's first error: the dotted key, what is wrong, the fix."""
    loc = _key(error["loc"])
    key = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        near = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        hint = f"did you mean `{near[0]}`? " if near else ""
        parent = ".".join(loc[:-1]) or "the top level"
        return f"`{key}` is not a known key; {hint}known keys of {parent}: {', '.join(known)}"
    if kind == "missing":
        return f"`{key}` is missing (a {'mapping' if len(loc) == 1 else 'value'} is required)"
    got = error.get("input")
    return f"`{key}` {error['msg'][0].lower()}{error['msg'][1:]} (got {got!r}); fix it in params.yaml"


def _known_keys(loc: list[str]) -> list[str]:
    """Field names of the schema model at `loc` (dict keys in between are skipped)."""
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:  # a free-form key of a dict (a variant or class name)
            continue
        inner = _model_in(field.annotation)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside an annotation such as `Raw`, `dict[str, Variant]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None

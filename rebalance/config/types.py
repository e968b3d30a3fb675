"""The params schema's building blocks: the base of every group, the constrained types its keys
use (rebalance/config/schema.py and synth.py build the groups from them), and `Rule`, the error of a
rule that ties keys together."""

from __future__ import annotations

import os
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rebalance.core.errors import RebalanceError

PositiveInt = Annotated[int, Field(gt=0)]
# a file or folder of the user's: `~/data/isic` means their home folder, as in a shell
UserPath = Annotated[str, Field(min_length=1), AfterValidator(os.path.expanduser)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"is not a regular expression ({err})") from None
    return pattern


Regex = Annotated[str, Field(min_length=1), AfterValidator(_compiles)]


class Group(BaseModel):
    """A params group: unknown keys are an error, values are not coerced from strings."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Rule(RebalanceError):
    """A broken rule that ties keys together (shares summing to 1, bins for every class, ...),
    raised by a group's model validator: `key` is the full dotted key, `message` what is wrong and
    the fix. Not a ValueError, so pydantic passes it through and the loader names the file."""

    def __init__(self, key: str, message: str):
        super().__init__(f"`{key}` {message}")
        self.key, self.message = key, message


def need(cond: bool, key: str, message: str) -> None:
    """Raise Rule(key, message) unless `cond`."""
    if not cond:
        raise Rule(key, message)

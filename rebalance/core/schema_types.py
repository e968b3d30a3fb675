"""The params schema's building blocks: the base of every group and the constrained types its
keys use (rebalance/core/schema.py and schema_synth.py build the groups from them)."""

from __future__ import annotations

import os
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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

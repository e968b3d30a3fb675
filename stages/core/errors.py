"""One error type for everything a user can fix, and one way to report it."""

from __future__ import annotations

import sys
from collections.abc import Callable


class RebalanceError(Exception):
    """A problem the user can fix. Its message is one line: what is wrong, where, and the fix."""


def run_main(main: Callable[[], None]) -> None:
    """Run a stage entry point; report a RebalanceError as one line on stderr and exit 1."""
    try:
        main()
    except RebalanceError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)

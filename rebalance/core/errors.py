"""One error type for everything a user can fix, and one way to report it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

MAX_PIXELS = 64_000_000  # an image over this many pixels is refused (a decompression bomb?)


class RebalanceError(Exception):
    """A problem the user can fix. Its message is one line: what is wrong, where, and the fix."""


class BadImageError(RebalanceError):
    """An image file that cannot be used; `reason` is the short why (no path, one line)."""

    def __init__(self, path: str | Path, reason: str, fix: str = "replace or remove the file") -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}; {fix}")


def run_main(main: Callable[[], None]) -> None:
    """Run a stage entry point; report a RebalanceError as one line on stderr and exit 1, and an
    interruption (Ctrl-C) as one line and exit 130. Stages write their outputs atomically, so an
    interrupted one leaves nothing half-written and a re-run completes it."""
    try:
        main()
    except RebalanceError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # `python -m stages.raw`: raw
        stage = spec.name.rpartition(".")[2] if spec else Path(sys.argv[0]).stem
        print(
            f"interrupted: stage {stage} stopped; nothing half-written is kept, `dvc repro` runs it again",
            file=sys.stderr,
        )
        sys.exit(130)

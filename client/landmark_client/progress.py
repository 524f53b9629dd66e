"""Progress on a terminal: tqdm's bar when installed (the `cli` extra), else nothing."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class ProgressBar(Protocol):
    """What evaluation needs of a progress bar (tqdm's, or NoProgress)."""

    def __enter__(self) -> Any: ...
    def __exit__(self, kind: Any, value: Any, traceback: Any, /) -> Any: ...
    def update(self, n: int = 1) -> Any: ...
    def set_postfix_str(self, s: str) -> Any: ...


class NoProgress:
    """A progress bar that shows nothing (when tqdm is not installed)."""

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


def progress(total: int, desc: str) -> ProgressBar:
    """A progress bar on stderr: photos/s, ETA and what the caller adds (failures)."""
    try:
        from tqdm import tqdm
    except ImportError:  # the SDK alone: no bars
        return NoProgress()
    return tqdm(total=total, desc=desc, unit="photo", file=sys.stderr, disable=None)

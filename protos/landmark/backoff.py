"""One backoff for everything that retries: a pause that doubles after each failure in a
row, up to a longest pause, and starts again from the first after a success."""

from __future__ import annotations

import random


def doubling(first: float, failures: int, longest: float = float("inf")) -> float:
    """The pause after ``failures`` failures in a row (1 = the first): first, 2x, 4x, ...
    at most ``longest``."""
    return min(first * 2 ** max(0, failures - 1), longest)


def jittered(pause: float) -> float:
    """``pause`` spread over [0.5, 1.5) of itself, so that callers that failed together do
    not come back together."""
    return pause * (0.5 + random.random())


class Backoff:
    """The failures in a row of one thing (a background step, a replica, a send)."""

    def __init__(self, first: float, longest: float) -> None:
        self.first = first
        self.longest = longest
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the pause before the next try."""
        self.failures += 1
        return doubling(self.first, self.failures, self.longest)

    def succeeded(self) -> None:
        self.failures = 0

    @property
    def failing(self) -> bool:
        """True from a failure until the next success."""
        return self.failures > 0

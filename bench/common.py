"""Where the bench finds its data and writes its results, and how it reports percentiles."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "landmarks").resolve()
RESULTS = ROOT / "bench" / "results"


def pct(values, q) -> float:  # noqa: ANN001
    return round(float(np.percentile(values, q)), 2) if len(values) else float("nan")


def peak_rss_mib() -> int:
    """This process's peak resident memory so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

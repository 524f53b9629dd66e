"""The matrix products of a search (exact k-NN of the growing buffer, exact matching of the
shortlist, re-ranking of Annoy's candidates): one BLAS thread per call, at most one call
per core at once, in blocks of at most EXACT_BLOCK entries."""

from __future__ import annotations

import os
import threading

from threadpoolctl import threadpool_limits

EXACT_BLOCK = 1 << 20  # distance-matrix entries per block of exact search or matching
# OpenBLAS keeps a work buffer (tens of MB) for every call running at once and never
# returns it; one call per core this process may run on uses the cores and keeps that
# memory bounded however many searches run in parallel.
CORES = len(os.sched_getaffinity(0))
SLOTS = threading.BoundedSemaphore(CORES)


def single_threaded_blas() -> None:
    """Make BLAS (numpy's matrix products) use one thread per call, for the whole process.

    A search parallelises over its own pool (Annoy lookups, exact matching, RANSAC). BLAS
    worker threads spin between calls and took the cores from those threads: measured on
    2 cores, a search took 124 ms with BLAS's own threads and 66 ms with one."""
    threadpool_limits(limits=1, user_api="blas")

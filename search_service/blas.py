"""The matrix products of a search (exact k-NN of the growing buffer, exact matching of the
shortlist, re-ranking of Annoy's candidates): one BLAS thread per call, at most two calls
at once, in blocks of at most EXACT_BLOCK entries."""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_limits

EXACT_BLOCK = 1 << 20  # distance-matrix entries per block of exact search or matching
# OpenBLAS keeps a work buffer (tens of MB) for every call running at once and never
# returns it; two at a time use both cores and keep that memory bounded however many
# searches run in parallel.
SLOTS = threading.BoundedSemaphore(2)


def single_threaded_blas() -> None:
    """Make BLAS (numpy's matrix products) use one thread per call, for the whole process.

    A search parallelises over its own pool (Annoy lookups, exact matching, RANSAC). BLAS
    worker threads spin between calls and took the cores from those threads: measured on
    2 cores, a search took 124 ms with BLAS's own threads and 66 ms with one."""
    threadpool_limits(limits=1, user_api="blas")

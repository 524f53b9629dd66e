"""Keep a threaded server's resident memory flat under glibc.

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
freed blocks stay in those arenas: with dozens of gRPC worker threads churning through
megabyte-sized numpy buffers, resident memory creeps up although nothing leaks. Two
arenas (the MALLOC_ARENA_MAX=2 advice for Python services) keep it flat at no
measurable cost here. glibc also raises its mmap threshold each time a large block is
freed, after which megabyte buffers (a search's similarity matrices) come from the arenas
and fragment them; a fixed threshold keeps every buffer of 256 KiB or more in its own
mapping, returned to the OS when freed. A no-op where glibc is not the C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024


def bound_malloc_arenas(arenas: int = 2) -> bool:
    """Limit glibc malloc arenas and fix the mmap threshold (call before the server's
    threads start); True if the arenas were bounded."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):  # unless the operator chose
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        if os.environ.get("MALLOC_ARENA_MAX"):
            return False  # the operator chose already
        ok = bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
    if ok:
        log.debug("malloc arenas bounded to %d", arenas)
    return ok


def start_trimming(interval: float = 5.0) -> bool:
    """Every ``interval`` seconds hand freed heap pages back to the OS (glibc malloc_trim),
    so resident memory follows what is live rather than the highest peak so far. True if
    started (glibc only)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False

    def run() -> None:
        while True:
            time.sleep(interval)
            trim(0)

    threading.Thread(target=run, name="malloc-trim", daemon=True).start()
    return True

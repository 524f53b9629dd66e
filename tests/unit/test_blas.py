"""The matrix products of searches run one per core the process may use, not a fixed two."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("cores", [{0}, set(range(len(os.sched_getaffinity(0))))])
def test_blas_slots_follow_the_cores_the_process_may_use(cores):
    # how many calls may hold a slot at once: take them until one is refused
    read = (
        "from search_service.search import blas\n"
        "held = 0\n"
        "while blas.SLOTS.acquire(blocking=False):\n"
        "    held += 1\n"
        "print(held)"
    )
    out = subprocess.run(
        [sys.executable, "-c", read],
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert int(out.stdout) == len(cores)

"""A merge's segment, built in a child process.

Building a segment runs a Python loop over its rows (Annoy takes one row per call). In the
service's process that loop holds the interpreter lock for most of a merge of millions of
rows, and every search thread waits for it at each of its own Python steps. In a child
process (a new interpreter, never a fork of a process running gRPC's threads) the merge
shares only the cores, at the lowest priority, and a large one is paused while searches
run (docs/index-design.md has the measurements). The child reads the old segments' files
itself and writes the new one exactly as a build in the service would (segment_writer.py);
the service names it in the manifest once the child has reported success. A child never
outlives the service: it is killed when the service stops, and dies with it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .segment import Segment, load_segment
from .segment_writer import Stopped, StoredImages, build_segment

PR_SET_PDEATHSIG = 1  # prctl: a signal for this process when its parent dies
POLL = 0.02  # seconds between looks at the child and at the searches
MAX_PAUSE = 2.0  # the longest the child is paused for searches, in seconds ...
MIN_RUN_AFTER_PAUSE = 0.5  # ... before it runs at least this long


def build_apart(
    images: StoredImages,
    dimension: int,
    n_trees: int,
    tmp: Path,
    final: Path,
    stopping: Any,
    projection_dim: int,
    nice: int,
    yield_to: Any = lambda: False,
) -> Segment:
    """``build_segment`` of ``images`` (rows of sealed segments) in a child process, with
    one thread for Annoy's trees. While ``yield_to()`` is true (searches are running) the
    child is paused, for at most MAX_PAUSE seconds at a time. Raises Stopped when
    ``stopping()`` turns true (the child is killed), OSError as the child met it (a full
    disk), RuntimeError else."""
    job = {
        "parent": os.getpid(),
        "parts": [(str(segment.path), index) for segment, index in images.where],
        "dimension": dimension,
        "n_trees": n_trees,
        "tmp": str(tmp),
        "final": str(final),
        "projection_dim": projection_dim,
        "nice": nice,
    }
    command = [sys.executable, "-m", "search_service.build_apart"]
    # stderr is the service's: what the child logs or raises lands in the service's log
    one_core = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env = {**os.environ, **one_core}
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
        _run_yielding(proc, stopping, yield_to)
        answer = proc.stdout.read()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    outcome = json.loads(answer) if answer.strip() else {"error": f"exit {proc.returncode}"}
    if "errno" in outcome:
        raise OSError(outcome["errno"], outcome["error"])
    if "error" in outcome:
        raise RuntimeError(f"the merge's build process failed: {outcome['error']}")
    return load_segment(final)


def _run_yielding(proc: subprocess.Popen, stopping: Any, yield_to: Any) -> None:
    """Wait for the child, pausing it (SIGSTOP) while ``yield_to()`` holds: a merge reads
    and writes gigabytes and builds Annoy's trees in memory, and beside a search on the
    same cores it doubled the search's time (memory and caches, not the cores, which the
    child's priority already yields). Paused at most MAX_PAUSE seconds in a row, then run
    for MIN_RUN, so that a node searched without a pause still merges."""
    paused_at: float | None = None
    resumed_at = time.monotonic()
    try:
        while True:
            try:
                proc.wait(POLL)
                return
            except subprocess.TimeoutExpired:
                pass
            if stopping():
                raise Stopped("shutting down")
            now = time.monotonic()
            if paused_at is None:
                if yield_to() and now - resumed_at >= MIN_RUN_AFTER_PAUSE:
                    proc.send_signal(signal.SIGSTOP)
                    paused_at = now
            elif not yield_to() or now - paused_at >= MAX_PAUSE:
                proc.send_signal(signal.SIGCONT)
                # after a full pause it runs MIN_RUN_AFTER_PAUSE whatever comes; after a
                # short one it yields again at the next search
                full = now - paused_at >= MAX_PAUSE
                paused_at = None
                resumed_at = now if full else now - MIN_RUN_AFTER_PAUSE
    finally:
        if paused_at is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)


def _build(job: dict) -> None:
    opened: dict[str, Segment] = {}
    where = []
    for path, index in job["parts"]:
        if path not in opened:
            opened[path] = load_segment(Path(path))
        where.append((opened[path], index))
    build_segment(
        StoredImages(where),
        job["dimension"],
        job["n_trees"],
        Path(job["tmp"]),
        Path(job["final"]),
        projection_dim=job["projection_dim"],
        jobs=1,
    )


def main() -> int:
    """The child: a job on stdin (JSON), the outcome on stdout (JSON)."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent kills it when it stops
        pass
    job = json.loads(sys.stdin.read())
    if os.getppid() != job["parent"]:  # the service died before prctl took effect
        return 1
    os.nice(job["nice"])
    try:
        _build(job)
        outcome: dict = {}
    except OSError as exc:
        outcome = {"errno": exc.errno, "error": str(exc)}
    except Exception as exc:  # reported to the service, which logs it
        outcome = {"error": repr(exc)}
    sys.stdout.write(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())

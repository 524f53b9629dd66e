"""A merge's segment, built in a child process.

Building a segment runs a Python loop over its rows (Annoy takes one row per call). In the
service's process that loop holds the interpreter lock for most of a merge of millions of
rows, and every search thread waits for it at each of its own Python steps. In a child
process (a new interpreter, never a fork of a process running gRPC's threads) the merge
shares only the machine, and the kernel gives it what searches leave: the child runs under
SCHED_IDLE (a CPU goes to it only when nothing else wants one) and in the idle I/O class
(docs/index-design.md has the measurements). The child reads the old segments' files
itself and writes the new one exactly as a build in the service would (segment_writer.py);
the service names it in the manifest once the child has reported success.

A child never outlives the service: it holds the read end of a pipe whose write end only
the service holds, and exits when that pipe closes, which the kernel does when the
service's process ends, however it ends and whichever of its threads started the child.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import Stopped
from .codebook import Codebook
from .codebook import load as load_codebook
from .segment import Segment, load_segment
from .segment_writer import StoredImages, build_segment

POLL = 0.05  # seconds between looks at the child and at ``stopping``
# ioprio_set(2): the system call's number by machine, and the idle class
IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
IOPRIO_WHO_PROCESS, IOPRIO_CLASS_IDLE, IOPRIO_CLASS_SHIFT = 1, 3, 13
ORPHANED = 3  # the child's exit status when the service went away


def spawn_builder() -> subprocess.Popen:
    """The child, started and waiting for its job on stdin."""
    command = [sys.executable, "-m", "search_service.index.build_apart"]
    # stderr is the service's: what the child logs or raises lands in the service's log
    one_core = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, **one_core}
    )


def build_apart(
    images: StoredImages,
    dimension: int,
    n_trees: int,
    tmp: Path,
    final: Path,
    stopping: Any,
    projection_dim: int,
    idle: bool = True,
    codebook: Codebook | None = None,
) -> Segment:
    """``build_segment`` of ``images`` (rows of sealed segments) in a child process, with
    one thread for Annoy's trees, at idle priority (``idle``) or else at nice 19. Raises
    Stopped when ``stopping()`` turns true (the child is killed), OSError as the child met
    it (a full disk), RuntimeError else."""
    job = {
        "parts": [(str(segment.path), index) for segment, index in images.where],
        "dimension": dimension,
        "n_trees": n_trees,
        "tmp": str(tmp),
        "final": str(final),
        "projection_dim": projection_dim,
        "idle": idle,
        "codebook": str(codebook.path) if codebook else None,
    }
    proc = spawn_builder()
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # one line; stdin then stays open until the child is done: its end is the child's
        # sign that the service is gone
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        proc.stdin.flush()
        while True:
            try:
                proc.wait(POLL)
                break
            except subprocess.TimeoutExpired:
                if stopping():
                    raise Stopped("shutting down") from None
        answer = proc.stdout.read()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stdin.close()
    outcome = json.loads(answer) if answer.strip() else {"error": f"exit {proc.returncode}"}
    if "errno" in outcome:
        raise OSError(outcome["errno"], outcome["error"])
    if "error" in outcome:
        raise RuntimeError(f"the merge's build process failed: {outcome['error']}")
    return load_segment(final)


def lowest_priority(idle: bool) -> None:
    """This process at nice 19 and, when ``idle``, under SCHED_IDLE in the idle I/O class
    (Linux; elsewhere nice 19 only)."""
    os.nice(19 - os.nice(0))
    if not idle:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        return
    number = IOPRIO_SET.get(platform.machine())
    if number is not None:
        ctypes.CDLL(None, use_errno=True).syscall(
            number, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT
        )


def _exit_when_closed(fd: int) -> None:
    """End this process once the pipe ``fd`` reaches its end: the service has gone. (A
    plain read of the descriptor: it holds no lock the interpreter's exit would wait for.)"""
    while os.read(fd, 1 << 16):
        pass
    os._exit(ORPHANED)


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
        codebook=load_codebook(Path(job["codebook"])) if job["codebook"] else None,
    )


def main() -> int:
    """The child: a job on stdin (one JSON line), the outcome on stdout (JSON)."""
    line = sys.stdin.buffer.readline()
    if not line.endswith(b"\n"):  # the service went away before it sent the job
        return ORPHANED
    threading.Thread(target=_exit_when_closed, args=(sys.stdin.fileno(),), daemon=True).start()
    job = json.loads(line)
    lowest_priority(job["idle"])
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

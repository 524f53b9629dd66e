"""A merge's segment is built in a child process: the same files as a build in the
service's process, the child's errors reported as the service would meet them, a child at
the lowest priority the kernel has (SCHED_IDLE, idle I/O) that stops at once when the
service does, and that dies with the service's process whichever thread started it."""

import contextlib
import errno
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from search_service.errors import Stopped
from search_service.index.build_apart import build_apart
from search_service.index.segment import load_segment
from search_service.index.segment_writer import StoredImages, build_segment

from .test_compact import images as segment_images


def sealed(tmp_path, name: str, count: int, seed: int):
    build_segment(segment_images(count, seed=seed), 128, 2, tmp_path / f"t-{name}", tmp_path / name)
    return load_segment(tmp_path / name)


@pytest.fixture
def rows(tmp_path) -> StoredImages:
    a, b = sealed(tmp_path, "a", 6, 1), sealed(tmp_path, "b", 4, 2)
    return StoredImages([(a, i) for i in (0, 2, 3, 5)] + [(b, i) for i in range(4)])


def test_a_child_build_writes_what_a_build_in_the_service_writes(tmp_path, rows):
    """Byte for byte, every file (Annoy's trees are seeded and built in one thread), and
    the child's segment answers: each row's nearest neighbour is that row. Both with one
    BLAS thread, as the service runs (blas.single_threaded_blas) and the child too: the
    covariance's sums come out in another order with more threads."""
    with threadpool_limits(limits=1, user_api="blas"):
        here = build_segment(rows, 128, 2, tmp_path / "t1", tmp_path / "here")
    apart = build_apart(rows, 128, 2, tmp_path / "t2", tmp_path / "apart", lambda: False, 16)
    files = sorted(p.name for p in here.path.iterdir())
    assert files == sorted(p.name for p in apart.path.iterdir())
    assert "index.ann" in files and "projection.npz" in files
    for name in files:
        assert (here.path / name).read_bytes() == (apart.path / name).read_bytes(), name
    assert apart.rows == rows.row_count()
    sample = np.arange(0, apart.rows, 37)
    projected = apart.projection(apart.unit_rows(sample))
    found = [apart.annoy.get_nns_by_vector(v, 1, search_k=-1)[0] for v in projected]
    assert found == sample.tolist()


def test_the_same_images_build_the_same_files(tmp_path):
    first = build_segment(segment_images(8, seed=5), 128, 8, tmp_path / "t1", tmp_path / "one")
    again = build_segment(segment_images(8, seed=5), 128, 8, tmp_path / "t2", tmp_path / "two")
    for path in first.path.iterdir():
        assert path.read_bytes() == (again.path / path.name).read_bytes(), path.name


def test_the_childs_disk_error_reaches_the_service_as_an_oserror(tmp_path, rows):
    with pytest.raises(OSError) as failed:  # the rename into a folder that is not there
        build_apart(rows, 128, 2, tmp_path / "t", tmp_path / "no" / "seg", lambda: False, 16)
    assert failed.value.errno == errno.ENOENT


def test_the_child_stops_when_the_service_does(tmp_path, rows):
    many = StoredImages(rows.where * 200)  # a build that takes a while
    start = time.monotonic()
    with pytest.raises(Stopped):
        build_apart(many, 128, 2, tmp_path / "t", tmp_path / "seg", lambda: True, 16)
    assert time.monotonic() - start < 2.0
    assert not (tmp_path / "seg").exists()


IOPRIO_GET = {"x86_64": 252, "aarch64": 31}


def io_class(pid: int) -> int:
    """The I/O scheduling class of ``pid`` (ioprio_get(2): 3 is idle)."""
    import ctypes
    import platform

    value = ctypes.CDLL(None).syscall(IOPRIO_GET[platform.machine()], 1, pid)
    assert value >= 0
    return value >> 13


def stat_field(pid: int, index: int) -> str:
    """A field of /proc/PID/stat after the command (0: state, 1: parent, 16: nice)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[index]


def children_of(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if int(stat_field(int(proc.name), 1)) == pid:
                found.append(int(proc.name))
    return found


@pytest.mark.parametrize("idle", [True, False])
def test_the_child_runs_at_the_lowest_priority(tmp_path, rows, idle):
    """A large merge's child runs under SCHED_IDLE in the idle I/O class, a small one's at
    nice 19 (it keeps pace with seals); seen from outside while it builds."""
    import threading

    many = StoredImages(rows.where * 400)
    seen: list[tuple[int, int, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for pid in children_of(os.getpid()):
                with contextlib.suppress(OSError):
                    if b"build_apart" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        nice = int(stat_field(pid, 16))
                        seen.append((os.sched_getscheduler(pid), io_class(pid), nice))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        seg = build_apart(many, 128, 2, tmp_path / "t", tmp_path / "seg", lambda: False, 16, idle)
    finally:
        done.set()
        watcher.join()
    assert seg.rows == many.row_count()
    if idle:
        assert (os.SCHED_IDLE, 3, 19) in seen
    else:
        assert (os.SCHED_OTHER, 0, 19) in seen or (os.SCHED_OTHER, 2, 19) in seen


PARENT = """
import json, sys, threading, time
from search_service.index.build_apart import spawn_builder
started = []

def start():
    child = spawn_builder()
    child.stdin.write(open(sys.argv[1], "rb").read() + b"\\n")  # builds for minutes
    child.stdin.flush()
    started.append(child)

thread = threading.Thread(target=start)
thread.start()
thread.join()  # the thread that started the child has ended; the process goes on
print(started[0].pid, flush=True)
time.sleep(600)
"""


def test_the_child_dies_with_its_process_whichever_thread_started_it(tmp_path, rows):
    import subprocess
    import sys

    from tests.conftest import REPO

    job = {
        "parts": [(str(s.path), i) for s, i in rows.where * 5000],
        "dimension": 128,
        "n_trees": 2,
        "tmp": str(tmp_path / "t"),
        "final": str(tmp_path / "seg"),
        "projection_dim": 16,
        "idle": True,
        "codebook": None,
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "job.json")], stdout=subprocess.PIPE, cwd=REPO
    )
    try:
        child = int(parent.stdout.readline())
        time.sleep(2.0)  # the starting thread is gone: the child must still be building
        assert child in children_of(parent.pid) and stat_field(child, 0) in "RSD"
        parent.kill()  # kill -9: no handler, no cleanup of its own
        parent.wait()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        state = stat_field(child, 0) if Path(f"/proc/{child}").exists() else "gone"
        assert state in ("gone", "Z"), state
        assert not (tmp_path / "seg").exists()
    finally:
        parent.kill()
        parent.stdout.close()

"""A merge's segment is built in a child process: the same files as a build in the
service's process, the child's errors reported as the service would meet them, and a
child that stops at once when the service does."""

import errno
import json
import time

import numpy as np
import pytest

from search_service.build_apart import build_apart
from search_service.segment import load_segment
from search_service.segment_writer import Stopped, StoredImages, build_segment

from .test_compact import images as segment_images


def sealed(tmp_path, name: str, count: int, seed: int):
    build_segment(segment_images(count, seed=seed), 128, 2, tmp_path / f"t-{name}", tmp_path / name)
    return load_segment(tmp_path / name)


@pytest.fixture
def rows(tmp_path) -> StoredImages:
    a, b = sealed(tmp_path, "a", 6, 1), sealed(tmp_path, "b", 4, 2)
    return StoredImages([(a, i) for i in (0, 2, 3, 5)] + [(b, i) for i in range(4)])


def test_a_child_build_writes_what_a_build_in_the_service_writes(tmp_path, rows):
    here = build_segment(rows, 128, 2, tmp_path / "t1", tmp_path / "here")
    apart = build_apart(rows, 128, 2, tmp_path / "t2", tmp_path / "apart", lambda: False, 16, 19)
    assert apart.rows == here.rows == rows.row_count()
    for name in ("descriptors.npy", "locations.npy"):
        assert np.array_equal(np.load(here.path / name), np.load(apart.path / name))
    assert json.loads((here.path / "meta.json").read_text()) == json.loads(
        (apart.path / "meta.json").read_text()
    )


def test_the_childs_disk_error_reaches_the_service_as_an_oserror(tmp_path, rows):
    with pytest.raises(OSError) as failed:  # the rename into a folder that is not there
        build_apart(rows, 128, 2, tmp_path / "t", tmp_path / "no" / "seg", lambda: False, 16, 19)
    assert failed.value.errno == errno.ENOENT


def test_the_child_stops_when_the_service_does(tmp_path, rows):
    many = StoredImages(rows.where * 200)  # a build that takes a while
    start = time.monotonic()
    with pytest.raises(Stopped):
        build_apart(many, 128, 2, tmp_path / "t", tmp_path / "seg", lambda: True, 16, 19)
    assert time.monotonic() - start < 2.0
    assert not (tmp_path / "seg").exists()


def child_states() -> list[str]:
    """The states (R, S, T, ...) of this process's build_apart children."""
    import os
    from pathlib import Path

    states = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if b"search_service.build_apart" in cmd and int(fields[1]) == os.getpid():
            states.append(fields[0])
    return states


def test_the_child_pauses_while_searches_run_and_still_finishes(tmp_path, rows):
    import threading

    many = StoredImages(rows.where * 30)
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(child_states())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:  # searches never stop: paused 2 s at a time, then it runs half a second
        seg = build_apart(many, 128, 2, tmp_path / "t", tmp_path / "seg", lambda: False, 16, 19,
                          yield_to=lambda: True)  # fmt: skip
    finally:
        done.set()
        watcher.join()
    assert seg.rows == many.row_count()
    assert "T" in seen  # stopped (SIGSTOP) while the searches ran

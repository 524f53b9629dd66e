"""A full index disk is a state, not a crash: a real search process on a small tmpfs.

Adds are refused with RESOURCE_EXHAUSTED while the disk is full, searches go on, the
background sealer backs off instead of dying (no SIGBUS), writes resume by themselves once
space is freed, and every acknowledged add survives kill -9 and a clean restart."""

import os
import signal
import subprocess
import time

import grpc
import pytest

from landmark_client import ImageToAdd, LandmarkError, SearchClient
from tests.e2e.test_durability import features, start


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the in-process fault tests still run")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk, leave: int):
    """A filler file that leaves about ``leave`` bytes free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def add(client, image_id, seed):
    client.add_images([ImageToAdd(image_id, "label", features(seed))])


@pytest.mark.parametrize("stop", ["kill -9", "SIGTERM"])
def test_disk_full_refuses_adds_keeps_reads_and_loses_nothing(small_disk, stop):
    index = small_disk / "index"
    proc, address = start(index)
    acked: list[str] = []
    try:
        with SearchClient(address, timeout=20) as client:
            for i in range(3):
                add(client, f"before-{i}", seed=i)
                acked.append(f"before-{i}")
            filler = fill(small_disk, 60 * 1024)
            refused = 0
            for i in range(3):  # 150 descriptors, ~78 KB of log: more than the disk holds
                with pytest.raises(LandmarkError) as err:
                    add(client, f"big-{i}", seed=100 + i)
                assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
                assert "index disk full" in str(err.value)
                refused += 1
            # reads go on while the disk is full
            result = client.search(features(0), top_k=3)
            assert result.best is not None and result.best.image_id == "before-0"
            assert proc.poll() is None, "the search process died on a full disk"
            filler.unlink()
            for i in range(3):
                add(client, f"after-{i}", seed=400 + i)  # resumes by itself
                acked.append(f"after-{i}")
            assert proc.poll() is None
    finally:
        if stop == "kill -9":
            proc.send_signal(signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert stop == "kill -9" or proc.returncode == 0

    proc, address = start(index)
    try:
        with SearchClient(address, timeout=20) as client:
            present = set(client_ids(client))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lost = sorted(set(acked) - present)
    print(f"\n{stop}: {len(acked)} acknowledged adds, {refused} refused, {len(lost)} lost")
    assert not lost


def client_ids(client) -> list[str]:
    return [r.image_id for r in client.list_images()]


def test_a_seal_that_finds_the_disk_full_backs_off_and_resumes(small_disk):
    index = small_disk / "index"
    proc, address = start(index, LANDMARK_SEAL_SECONDS="1", LANDMARK_IDLE_MERGE_SECONDS="0")
    try:
        with SearchClient(address, timeout=20) as client:
            filler = fill(small_disk, 400 * 1024)  # room for the log, not for a segment
            for i in range(3):
                add(client, f"img-{i}", seed=i)  # acknowledged: in the log
            deadline = time.monotonic() + 10
            while not client.index_info().disk_full and time.monotonic() < deadline:
                time.sleep(0.2)
            info = client.index_info()
            assert info.disk_full and info.segments == 0, info
            assert client.search(features(1), top_k=1).best.image_id == "img-1"
            assert proc.poll() is None, "the search process died while sealing on a full disk"
            filler.unlink()
            deadline = time.monotonic() + 40  # the sealer's pause grows to at most 30 s
            while client.index_info().segments == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            info = client.index_info()
            assert info.segments == 1 and not info.disk_full and info.growing_descriptors == 0
            assert sorted(client_ids(client)) == ["img-0", "img-1", "img-2"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    leftovers = sorted(p.name for p in index.iterdir() if p.name.startswith(("wal-", ".tmp")))
    assert len(leftovers) == 1, f"failed seals left files behind: {leftovers}"


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")

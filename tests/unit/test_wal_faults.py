"""The write-ahead log under injected faults: ENOSPC, EIO and short writes at every byte of a
record, a failed rollback, a torn tail and damage in the middle of a log."""

import errno
import os

import pytest

from search_service.index import wal
from search_service.index.wal import HEADER, WalBroken, WalWriter, scan


def payload(i: int, size: int = 40) -> bytes:
    return b"A" + bytes([i % 256]) * (size - 1)


REAL_PWRITE, REAL_FSYNC, REAL_FTRUNCATE = os.pwrite, os.fsync, os.ftruncate


class Faults:
    """Replaces os.pwrite / os.fsync / os.ftruncate in the wal module, for one failure."""

    def __init__(self, monkeypatch):
        self.fail_after: int | None = None  # bytes written before the next pwrite fails
        self.error = errno.ENOSPC
        self.short = False  # every pwrite writes at most 7 bytes (legal short writes)
        self.fail_fsync = False
        self.fail_truncate = False
        monkeypatch.setattr(wal.os, "pwrite", self.pwrite)
        monkeypatch.setattr(wal.os, "fsync", self.fsync)
        monkeypatch.setattr(wal.os, "ftruncate", self.ftruncate)

    def pwrite(self, fd, data, offset):
        data = bytes(data)
        if self.fail_after is not None:
            done = REAL_PWRITE(fd, data[: self.fail_after], offset)  # the part that got out
            self.fail_after = None
            raise OSError(self.error, f"injected after {done} bytes")
        if self.short:
            data = data[:7]
        return REAL_PWRITE(fd, data, offset)

    def fsync(self, fd):
        if self.fail_fsync:
            self.fail_fsync = False
            raise OSError(errno.EIO, "injected fsync failure")
        return REAL_FSYNC(fd)

    def ftruncate(self, fd, length):
        if self.fail_truncate:
            raise OSError(errno.EIO, "injected truncate failure")
        return REAL_FTRUNCATE(fd, length)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_failed_append_at_any_byte_loses_nothing_acknowledged(tmp_path, monkeypatch, error):
    faults = Faults(monkeypatch)
    faults.error = error
    record_size = HEADER.size + 40
    lost = 0
    for cut in range(0, 2 * record_size + 1):  # every byte of a two-record batch
        path = tmp_path / f"wal-{cut}.log"
        writer = WalWriter(path)
        writer.append([payload(1), payload(2)])  # acknowledged
        faults.fail_after = cut
        with pytest.raises(OSError) as failure:
            writer.append([payload(3), payload(4)])  # fails part-way: not acknowledged
        assert failure.value.errno == error
        writer.append([payload(5)])  # acknowledged after the failure
        writer.close()
        after_restart = WalWriter(path)  # what a restart does: scan, drop a torn tail
        after_restart.close()
        records = scan(path).records
        lost += records != [payload(1), payload(2), payload(5)]
    print(f"\nfailed appends at {2 * record_size + 1} offsets: {lost} acknowledged records lost")
    assert lost == 0


def test_a_failed_fsync_rolls_the_append_back(tmp_path, monkeypatch):
    faults = Faults(monkeypatch)
    path = tmp_path / "wal.log"
    writer = WalWriter(path)
    writer.append([payload(1)])
    faults.fail_fsync = True
    with pytest.raises(OSError):
        writer.append([payload(2)])
    writer.append([payload(3)])
    writer.close()
    assert scan(path).records == [payload(1), payload(3)]


def test_short_writes_are_completed(tmp_path, monkeypatch):
    Faults(monkeypatch).short = True
    path = tmp_path / "wal.log"
    writer = WalWriter(path)
    writer.append([payload(i, 100) for i in range(5)])
    writer.close()
    assert scan(path).records == [payload(i, 100) for i in range(5)]


def test_a_failed_rollback_closes_the_log_for_good(tmp_path, monkeypatch):
    faults = Faults(monkeypatch)
    path = tmp_path / "wal.log"
    writer = WalWriter(path)
    writer.append([payload(1)])
    faults.fail_truncate = True
    faults.fail_after = 20
    with pytest.raises(OSError):
        writer.append([payload(2)])
    assert writer.broken
    faults.fail_truncate = False
    with pytest.raises(WalBroken):
        writer.append([payload(3)])  # nothing lands behind the torn record
    writer.close()
    assert scan(path).records == [payload(1)]
    assert scan(path).torn_tail == 20


def test_a_torn_tail_is_dropped_on_open(tmp_path):
    path = tmp_path / "wal.log"
    writer = WalWriter(path)
    writer.append([payload(1), payload(2)])
    writer.close()
    good = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(HEADER.pack(40, 0) + b"A" * 10)  # a crash in the middle of a record
    assert scan(path).torn_tail == 18
    WalWriter(path).close()
    assert path.stat().st_size == good
    assert scan(path).records == [payload(1), payload(2)]


def test_damage_in_the_middle_keeps_the_records_after_it(tmp_path, caplog):
    path = tmp_path / "wal.log"
    writer = WalWriter(path)
    writer.append([payload(1), payload(2), payload(3)])
    writer.close()
    data = bytearray(path.read_bytes())
    second = HEADER.size + 40
    data[second + HEADER.size + 5] ^= 0xFF  # a flipped byte inside record 2
    path.write_bytes(bytes(data))
    found = scan(path)
    assert found.records == [payload(1), payload(3)]
    assert found.damaged == [(second, 2 * second)]
    assert found.torn_tail == 0
    assert "intact records follow" in caplog.text
    writer = WalWriter(path)  # opening must not cut record 3 off
    writer.append([payload(4)])
    writer.close()
    assert scan(path).records == [payload(1), payload(3), payload(4)]


def test_the_store_moves_to_a_new_log_when_one_cannot_be_rolled_back(tmp_path, monkeypatch):
    from search_service.errors import DiskFull
    from search_service.index.wiring import Index
    from tests.unit.test_store_shutdown import image

    index = Index(tmp_path / "index", background=False)

    store = index.store
    store.apply([], [image(1, 50)])
    faults = Faults(monkeypatch)
    faults.fail_after, faults.fail_truncate = 100, True
    with pytest.raises(DiskFull, match="index disk full"):
        store.apply([], [image(2, 50)])
    assert store.disk.disk_full
    faults.fail_truncate = False
    store.apply([], [image(3, 50)])  # lands in a new log, not behind the torn record
    assert not store.disk.disk_full and len(store.logs.paths) == 2
    index.close()
    reopened = Index(tmp_path / "index", background=False)
    assert sorted(reopened.store.view.by_id) == ["img-1", "img-3"]
    reopened.close()

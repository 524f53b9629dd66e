"""The index directory's disk: room, write errors, and segment files written safely."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DiskFull, StorageFailure
from .build_apart import build_apart
from .codebook import Codebook
from .images import ImageData
from .segment import Segment
from .segment_writer import StoredImages, build_segment, bytes_needed

if TYPE_CHECKING:
    from .store_settings import StoreSettings

log = logging.getLogger(__name__)

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class IndexDisk:
    """Where segments are written; ``disk_full`` is True while writes find no room."""

    def __init__(self, directory: Path, settings: StoreSettings, stop: threading.Event) -> None:
        self.dir = directory
        self.settings = settings
        self.stop = stop  # a build stops (Stopped) once this is set
        self.disk_full = False

    def free_bytes(self) -> int:
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def storage_error(self, exc: OSError, what: str) -> Exception:
        """The domain error for a failed write: DiskFull on ENOSPC, StorageFailure else."""
        if exc.errno in NO_SPACE:
            self.set_disk_full(True)
            return DiskFull(
                f"index disk full: {self.free_bytes()} bytes free in {self.dir}; {what} was "
                "not written. Free space or grow the volume: writes resume by themselves"
            )
        return StorageFailure(f"the index disk failed to write ({exc}); {what} was not written")

    def set_disk_full(self, full: bool) -> None:
        if full != self.disk_full:
            self.disk_full = full
            if full:
                log.error("index disk full (%d bytes free): writes refused", self.free_bytes())
            else:
                log.warning(
                    "index disk has room again (%d bytes free): writes resume", self.free_bytes()
                )

    def write_segment(
        self,
        images: Sequence[ImageData],
        dimension: int,
        name: str,
        what: str,
        apart: bool = False,
        idle: bool = False,
        codebook: Codebook | None = None,
    ) -> Segment:
        """Build a segment (no lock held), refusing up front when the disk cannot hold it;
        on failure nothing of it is left behind. ``apart``: build the rows of sealed segments
        (a merge) in a child process at nice 19, or at idle priority when ``idle``
        (build_apart.py)."""
        tmp = self.dir / f".tmp-{name}"
        s = self.settings
        need = bytes_needed(images, dimension, s.n_trees, s.projection_dim, bool(codebook))
        if self.free_bytes() < need:
            self.set_disk_full(True)
            raise DiskFull(
                f"index disk full: {self.free_bytes()} bytes free in {self.dir}, about {need} "
                f"needed; {what} was not written. Free space or grow the volume"
            )
        final = self.dir / name
        try:
            args = (images, dimension, s.n_trees, tmp, final, self.stop.is_set, s.projection_dim)
            if apart and isinstance(images, StoredImages):
                return build_apart(*args, idle, codebook)
            return build_segment(*args, codebook)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self.storage_error(exc, what) from exc
        except BaseException:  # Stopped, or a child build that failed
            shutil.rmtree(tmp, ignore_errors=True)
            raise

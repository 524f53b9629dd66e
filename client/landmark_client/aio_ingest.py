"""The asyncio LandmarkClient's ingest: the sync client's, run in a worker thread with
channels of its own (it keeps many calls in flight on gRPC's own threads)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .gallery import DISTRACTOR_LABEL
from .progress import ProgressBar
from .types import IngestReport, Photo


class IngestTwins:
    extractor: Any
    search: Any
    timeout: float

    def _blocking(self, method: str, *args: Any, **kw: Any) -> Any:
        from .client import LandmarkClient as Sync

        ex, se = self.extractor, self.search
        with Sync(ex.address, se.address, timeout=self.timeout, connection=ex.connection) as c:
            return getattr(c, method)(*args, **kw)

    async def ingest(
        self,
        photos: Iterable[Photo],
        *,
        on_conflict: str = "skip",
        timeout: float | None = None,
        progress: ProgressBar | None = None,
    ) -> IngestReport:
        kw = {"on_conflict": on_conflict, "timeout": timeout, "progress": progress}
        return await asyncio.to_thread(self._blocking, "ingest", photos, **kw)  # own channels

    async def index_folder(
        self,
        folder: str | Path,
        *,
        distractor_label: str = DISTRACTOR_LABEL,
        show_progress: bool = False,
        timeout: float | None = None,
    ) -> IngestReport:
        kw = {
            "distractor_label": distractor_label,
            "show_progress": show_progress,
            "timeout": timeout,
        }
        return await asyncio.to_thread(self._blocking, "index_folder", folder, **kw)

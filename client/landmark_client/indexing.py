"""Index a labeled folder of photos through the running services (ingest.py does the work)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from . import gallery as gallery_mod
from .gallery import DISTRACTOR_LABEL
from .ingest import ingest
from .progress import NoProgress, progress
from .types import IngestReport, Photo


def index_gallery(
    folder: str | Path,
    client,  # noqa: ANN001 (LandmarkClient: its two service clients)
    distractor: str = DISTRACTOR_LABEL,
    *,
    show_progress: bool = True,
    timeout: float | None = None,
) -> IngestReport:
    """Extract and add every photo of a labeled folder not yet in the index, through every
    extractor replica the client knows. Photos labeled ``distractor`` show none of the
    landmarks: they are left out (a distractor in the index would answer "distractor" for
    photos like it). A photo that cannot be read or described is reported in
    ``failed`` with its reason; the run goes on."""
    images = gallery_mod.scan(folder)  # paths and labels only, never features
    present = {r.image_id for r in client.search.list_images()}
    report = IngestReport(found=len(images))
    todo = []
    for g in images:
        if g.label == distractor:
            report.distractors += 1
        elif g.image_id in present:
            report.already_indexed += 1
        else:
            todo.append(g)

    def photos() -> Iterator[Photo]:
        for g in todo:
            yield Photo(g.image_id, g.label, g.path)

    bar = progress(len(todo), "indexing") if show_progress else NoProgress()
    with bar:
        return ingest(
            photos(),
            client.extractor,
            client.search,
            timeout=client.timeout if timeout is None else timeout,
            progress=bar,
            report=report,
        )

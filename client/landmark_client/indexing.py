"""Index a labeled folder of photos through the running services."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import gallery as gallery_mod
from .client import LandmarkClient
from .evaluation import NoProgress, ProgressBar
from .gallery import DISTRACTOR_LABEL
from .types import ImageToAdd


def progress(total: int, desc: str) -> ProgressBar:
    """A progress bar on stderr (tqdm, when installed with the `cli` extra)."""
    try:
        from tqdm import tqdm
    except ImportError:  # the SDK alone: no bars
        return NoProgress()
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=None)


@dataclass
class IndexReport:
    found: int  # photos in the folder, distractors included
    already_indexed: int
    added: int
    distractors: int  # photos under the distractor label: never indexed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image id, why)


def index_gallery(
    folder: str | Path,
    client: LandmarkClient,
    distractor: str = DISTRACTOR_LABEL,
    batch: int = 16,
) -> IndexReport:
    """Extract and add every photo of a labeled folder not yet in the index. Photos labeled
    ``distractor`` show none of the landmarks: they are left out (a distractor in the index
    would answer "distractor" for photos like it)."""
    images = gallery_mod.scan(folder)
    present = {r.image_id for r in client.search.list_images()}
    gallery = [g for g in images if g.label != distractor]
    todo = [g for g in gallery if g.image_id not in present]
    report = IndexReport(len(images), len(gallery) - len(todo), 0, len(images) - len(gallery))
    pending: list[ImageToAdd] = []

    def flush() -> None:
        if pending:
            report.added += client.search.add_images(pending, on_conflict="skip").added
            pending.clear()

    with progress(len(todo), "indexing") as bar:
        labels = {g.image_id: g.label for g in todo}
        stream = client.extractor.extract_many(
            ((g.image_id, g.path) for g in todo), timeout=max(60.0, 10.0 * len(todo))
        )
        for item in stream:
            if item.features is None:
                report.failed.append((item.request_id, str(item.error)))
            else:
                pending.append(ImageToAdd(item.request_id, labels[item.request_id], item.features))
            if len(pending) >= batch:
                flush()
            bar.update(1)
        flush()
    return report

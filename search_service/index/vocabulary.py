"""The index's visual words: the codebook every segment's inverted file is built with.

An index has none until its first segment is built; that build fits it on its own
descriptors (``codebook_words`` words, or one per MIN_ROWS_PER_WORD descriptors when it
has fewer: words fitted on a few photos shortlist nearly as well as words fitted on the
whole index) and stores it in a folder of its own (``words-000007``), fsynced. Every
manifest written from then on names it, the first being the one that commits that
segment; a crash before then leaves the folder unnamed, and the next start deletes it.
Builds that run at the same time wait for that one fit.

Shards of one coordinator must share their words, so that their images' scores compare: each
is given the same codebook folder (``codebook`` setting), which its index takes as its own
at its first segment build, whatever its size. An index whose words differ from the folder
given is refused at start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import IndexCorrupt
from . import codebook
from .codebook import MIN_ROWS_PER_WORD, Codebook
from .images import ImageData
from .segment_writer import StoredImages, row_count
from .store_settings import StoreSettings

log = logging.getLogger(__name__)

# a seal fits the words while adds wait for nothing but still share its 2 cores: fewer
# rows and rounds than the bench's fit (65,536 words in two levels on 1M rows: 37 s once)
FIT_SAMPLE_PER_WORD = MIN_ROWS_PER_WORD
FIT_ROUNDS = 5


class Vocabulary:
    def __init__(
        self,
        index_dir: Path,
        name: str,
        settings: StoreSettings,
        new_name: Callable[[str], str],
        stored: Callable[[], StoredImages],
    ) -> None:
        """``name``: the folder the manifest names ("" for none); ``stored()``: the live
        images of the sealed segments, read from disk when asked for."""
        self.dir = index_dir
        self.name = name
        self.words = settings.codebook_words
        self.min_rows = settings.codebook_min_rows
        self.fit = settings.fit_codebook
        self._new_name = new_name
        self._stored = stored
        self._lock = threading.Lock()
        self.codebook: Codebook | None = codebook.load(index_dir / name) if name else None
        self.pinned = codebook.load(Path(settings.codebook)) if settings.codebook else None
        if self.pinned and self.codebook and self.pinned.version != self.codebook.version:
            raise IndexCorrupt(
                f"{index_dir} holds the codebook {self.codebook.version} ({name}), not "
                f"{self.pinned.version} given by --codebook {settings.codebook}: give the "
                "index its own, or index the photos again in an empty folder"
            )

    def for_build(
        self, images: Sequence[ImageData], backend: str, dimension: int
    ) -> Codebook | None:
        """The codebook a build of ``images`` uses; fitted when there is none and the
        build's and the sealed images hold ``min_rows`` descriptors or more (None before:
        the build is written without an inverted file, and searched by its rows)."""
        with self._lock:
            if self.codebook is None and self.pinned:
                if self.pinned.backend == backend and self.pinned.dimension == dimension:
                    self.codebook = self._take(self.pinned)
                else:
                    log.error(
                        "the codebook %s is for %s (%d-D) features, the index holds %s "
                        "(%d-D): segments are written without words",
                        self.pinned.path, self.pinned.backend, self.pinned.dimension,
                        backend, dimension,
                    )  # fmt: skip
            elif self.codebook is None and self.fit:
                stored = self._stored()
                # a merge's images are stored ones already: counted once
                new = [] if isinstance(images, StoredImages) else images
                rows = row_count(new) + stored.row_count()
                if rows >= max(self.min_rows, 1):
                    sample = _sample(new, stored, FIT_SAMPLE_PER_WORD * self.words)
                    self.codebook = self._fit(sample, backend)
            return self.codebook

    def bytes_on_disk(self) -> int:
        """The codebook's files (0 before it is fitted)."""
        if not self.name:
            return 0
        return sum(f.stat().st_size for f in (self.dir / self.name).iterdir())

    def _take(self, given: Codebook) -> Codebook:
        name = self._new_name("words")
        # written again (a one-level codebook's trees seeded: the same), not copied from
        # the mapped files
        again = codebook.create(
            given.backend, given.vectors, given.fitted_on, given.cells, given.cell_starts
        )
        codebook.save(again, self.dir / name)
        self.name = name
        log.info("took the codebook %s (%s) as %s", given.path, given.version, name)
        return codebook.load(self.dir / name)

    def _fit(self, rows: np.ndarray, backend: str) -> Codebook:
        """Words fitted on ``rows``, a sample of the index's descriptors: at most one per
        MIN_ROWS_PER_WORD of them (8,192 words fitted on 10 rows each shortlisted worse at
        10,000 images than 5,125 on 16: recall 0.975 against 0.987), two-level from
        TWO_LEVEL_WORDS."""
        words = max(1, min(self.words, len(rows) // MIN_ROWS_PER_WORD))
        name = self._new_name("words")
        fitted = codebook.fitted(
            backend, rows, words, rounds=FIT_ROUNDS, sample_per_word=FIT_SAMPLE_PER_WORD
        )
        codebook.save(fitted, self.dir / name)
        book = codebook.load(self.dir / name)
        self.name = name
        log.info("fitted %d words on %d descriptors (%s)", words, len(rows), name)
        return book


def _sample(images: Sequence[ImageData], stored: StoredImages, limit: int) -> np.ndarray:
    """Up to about ``limit`` descriptors of ``images`` and ``stored``: all of them when
    they are fewer, else those of images taken in a seeded random order until there are
    enough (a stored image is read from disk only when taken)."""
    order = np.random.default_rng(codebook.SEED).permutation(len(images) + len(stored))
    parts, total = [], 0
    for i in order.tolist():
        d = (images[i] if i < len(images) else stored[i - len(images)]).descriptors
        parts.append(d)
        total += len(d)
        if total >= limit:
            break
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def main(argv: list[str] | None = None) -> int:
    """Fit a codebook on an index's stored images, for shards to share (--codebook)."""
    import argparse

    from . import manifest
    from .segment import load_segment

    ap = argparse.ArgumentParser(
        prog="python -m search_service.index.vocabulary",
        description="fit visual words on the sealed images of an index folder (a sample of "
        "photos indexed by one search service) and write them to a codebook folder that "
        "every shard is then started with (--codebook)",
    )
    ap.add_argument("index_dir", type=Path)
    ap.add_argument("out", type=Path, help="the codebook folder to write (must not exist)")
    ap.add_argument("--words", type=int, default=StoreSettings().codebook_words)
    args = ap.parse_args(argv)
    found = manifest.read(args.index_dir)
    segments = [load_segment(args.index_dir / n) for n in found.segments]
    stored = StoredImages.live(segments, set(found.removed))
    if stored.row_count() < args.words * MIN_ROWS_PER_WORD:
        ap.error(
            f"{args.index_dir} holds {stored.row_count()} sealed descriptors: {args.words} "
            f"words need {args.words * MIN_ROWS_PER_WORD} (index more photos, or ask fewer "
            "--words)"
        )
    rows = _sample([], stored, codebook.SAMPLE_PER_WORD * args.words)
    fitted = codebook.fitted(found.backend, rows, args.words)
    codebook.save(fitted, args.out)
    print(f"{args.out}: {fitted.words} words ({found.backend}), version {fitted.version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The index's visual words: the codebook every segment's inverted file is built with.

An index has none until its first segment is built; that build fits it on its own
descriptors (``codebook_words`` words, or one per MIN_ROWS_PER_WORD descriptors when it
has fewer: words fitted on a few photos shortlist nearly as well as words fitted on the
whole index) and stores it in a folder of its own (``words-000007``), fsynced. Every
manifest written from then on names it, the first being the one that commits that
segment; a crash before then leaves the folder unnamed, and the next start deletes it.
Builds that run at the same time wait for that one fit.

The words grow with the index: an index fits its first words on a hundred photos or so
(one word per MIN_ROWS_PER_WORD descriptors), too few for a large index, whose word lists
then grow long and its searches slow. Once its sealed images hold enough descriptors for
REFIT_GROWTH times its words (or for ``codebook_words``), a merge fits new words (in the
merger's thread; seals and other merges meanwhile use the current words) and builds with
them, as all builds do from then on; the words before stay, named in the manifest as the
previous ones, while segments built with them remain: searches aggregate the query over
both, and merges rewrite those segments one at a time with the new words (merging.py).
The manifest written once none remains names them no more, and their folder is deleted.
With the default settings, an index that grows photo by photo fits 6,250 words at 100
photos, 25,000 at 400 and 65,536 at about 1,050, and keeps those. (A seal that took the
previous words before the refit and commits after the last of their segments was
rewritten would be a segment of words no longer kept, unsearched by words until the
merger rewrites it, which it does next: unlikely, as that rewrite takes tens of seconds
and a seal about one.)

Shards of one coordinator must share their words, so that their images' scores compare: each
is given the same codebook folder (``codebook`` setting), which its index takes as its own
at its first segment build, whatever its size. An index whose words differ from the folder
given is refused at start.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexCorrupt
from . import codebook
from .codebook import MIN_ROWS_PER_WORD, Codebook
from .images import ImageData
from .segment import Segment
from .segment_writer import StoredImages, row_count
from .store_settings import StoreSettings

log = logging.getLogger(__name__)

# a seal fits the words while adds wait for nothing but still share its 2 cores: fewer
# rows and rounds than the bench's fit (65,536 words in two levels on 1M rows: 37 s once)
FIT_SAMPLE_PER_WORD = MIN_ROWS_PER_WORD
FIT_ROUNDS = 5
# new words are fitted once the sealed images hold enough descriptors for this many times
# the words (each refit rewrites every segment's inverted file: about 1.4M descriptors in
# all on the way to 65,536 words)
REFIT_GROWTH = 4


@dataclass(frozen=True)
class Words:
    """The index's words at one moment, replaced whole: the current ones (what builds
    use) and their folder, and the previous ones while segments built with them remain."""

    current: Codebook | None = None
    name: str = ""
    previous: Codebook | None = None
    previous_name: str = ""

    def kept_for(self, in_use: Set[str]) -> Words:
        """These words, without the previous ones when no segment uses them (the codebook
        versions of ``in_use``)."""
        if self.previous is None or self.previous.version in in_use:
            return self
        return Words(self.current, self.name)


class Vocabulary:
    def __init__(
        self,
        index_dir: Path,
        name: str,
        previous: str,
        settings: StoreSettings,
        new_name: Callable[[str], str],
        stored: Callable[[], StoredImages],
        stopping: Callable[[], bool],
    ) -> None:
        """``name``, ``previous``: the folders the manifest names ("" for none);
        ``stored()``: the live images of the sealed segments, read from disk when asked
        for; a fit stops (Stopped) once ``stopping()`` is true."""
        self.dir = index_dir
        self.words = settings.codebook_words
        self.min_rows = settings.codebook_min_rows
        self.fit = settings.fit_codebook
        self._new_name = new_name
        self._stored, self._stopping = stored, stopping
        self._lock = threading.Lock()  # builds: one fits, the others wait for its words
        self._growing = False  # a merge fits new words (the others use the current ones)
        self.state = Words(
            codebook.load(index_dir / name) if name else None,
            name,
            codebook.load(index_dir / previous) if previous else None,
            previous,
        )
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
        the build is written without an inverted file, and searched by its rows). A merge
        fits them again when the sealed images have grown enough for REFIT_GROWTH times
        their words: in the merger's thread, at its priority, while other builds go on
        with the current words."""
        with self._lock:
            if self.codebook is None and self.pinned:
                if self.pinned.backend == backend and self.pinned.dimension == dimension:
                    self._take(self.pinned)
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
                    fitted, name = self._fit(sample, backend)
                    self.state = Words(fitted, name)
            grow = isinstance(images, StoredImages) and self._may_grow()
            self._growing |= grow
            book = self.codebook
        if grow:
            try:
                book = self._grow(images, backend) or book
            finally:
                self._growing = False
        return book

    @property
    def codebook(self) -> Codebook | None:
        """The current words (None before they are fitted)."""
        return self.state.current

    @property
    def name(self) -> str:
        return self.state.name

    def for_manifest(self, segments: Sequence[Segment]) -> Words:
        """The words a manifest names beside ``segments``: the previous ones only while
        one of them was built with them."""
        in_use = {s.inverted.codebook_version for s in segments if s.inverted is not None}
        return self.state.kept_for(in_use)

    def named(self, words: Words) -> None:
        """Once a manifest names ``words`` (for_manifest): previous words it no longer
        names are forgotten, and their folder deleted. Not under the builds' lock, which a
        fit holds for seconds: the store calls this with its state lock held, and a refit
        (the only other change while there are previous words) waits until there are
        none."""
        state = self.state
        if words is state or state.current is not words.current:
            return
        self.state = words
        shutil.rmtree(self.dir / state.previous_name, ignore_errors=True)
        log.info("no segment uses the words %s any more: deleted", state.previous_name)

    def bytes_on_disk(self) -> int:
        """The codebooks' files (0 before one is fitted)."""
        names = [n for n in (self.state.name, self.state.previous_name) if n]
        return sum(f.stat().st_size for n in names for f in (self.dir / n).iterdir())

    def _may_grow(self) -> bool:
        """Whether the index's own words may be fitted again (not a shared codebook's,
        not while segments use the previous ones, not when they were fitted for
        ``codebook_words`` already: a two-level fit may give a few words fewer)."""
        book, state = self.codebook, self.state
        return (
            self.fit
            and not self.pinned
            and book is not None
            and state.previous is None
            and self._target(book.fitted_on) < self.words
            and not self._growing
        )

    def _target(self, rows: int) -> int:
        """The words a fit on ``rows`` descriptors asks for."""
        return max(1, min(self.words, rows // MIN_ROWS_PER_WORD))

    def _grow(self, images: StoredImages, backend: str) -> Codebook | None:
        """New words (None: not yet) when the sealed images hold enough descriptors for
        REFIT_GROWTH times the words the current ones were fitted for, or for
        ``codebook_words``."""
        book = self.codebook
        assert book is not None
        stored = self._stored()
        wanted, had = self._target(stored.row_count()), self._target(book.fitted_on)
        if wanted < min(REFIT_GROWTH * had, self.words):
            return None
        fitted, name = self._fit(_sample([], stored, FIT_SAMPLE_PER_WORD * wanted), backend)
        self.state = Words(fitted, name, book, self.state.name)
        log.info("the index outgrew its %d words: %d new ones (%s)", book.words, fitted.words, name)
        return fitted

    def _take(self, given: Codebook) -> Codebook:
        name = self._new_name("words")
        # written again (a one-level codebook's trees seeded: the same), not copied from
        # the mapped files
        again = codebook.create(
            given.backend, given.vectors, given.fitted_on, given.cells, given.cell_starts
        )
        codebook.save(again, self.dir / name)
        log.info("took the codebook %s (%s) as %s", given.path, given.version, name)
        book = codebook.load(self.dir / name)
        self.state = Words(book, name)
        return book

    def _fit(self, rows: np.ndarray, backend: str) -> tuple[Codebook, str]:
        """Words fitted on ``rows``, a sample of the index's descriptors: at most one per
        MIN_ROWS_PER_WORD of them (8,192 words fitted on 10 rows each shortlisted worse at
        10,000 images than 5,125 on 16: recall 0.975 against 0.987), two-level from
        TWO_LEVEL_WORDS."""
        words = self._target(len(rows))
        name = self._new_name("words")
        fitted = codebook.fitted(
            backend, rows, words, FIT_ROUNDS, FIT_SAMPLE_PER_WORD, stopping=self._stopping
        )
        codebook.save(fitted, self.dir / name)
        log.info("fitted %d words on %d descriptors (%s)", words, len(rows), name)
        return codebook.load(self.dir / name), name


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

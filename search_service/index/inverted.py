"""A segment's inverted file: ASMK* aggregation of its images' descriptors over the index's
codebook (Tolias et al., "To aggregate or not to aggregate: selective match kernels").

Each descriptor goes to its nearest word; per image and word, the residuals (descriptor
minus word) of its descriptors in that word are summed and binarized, one bit per
dimension: one signature per (image, word), however many of the image's descriptors fall
in it, so a repeated pattern (a fence, a facade's windows) counts once (burstiness). The
entries are stored by word:

    inverted/  meta.json           codebook version, words, entries, bits
               word_starts.npy     [W + 1] int64: word w's entries are [starts[w], starts[w+1])
               entry_image.npy     [E] int32 image number within the segment
               entry_bits.npy      [E, ceil(D / 8)] uint8 packed signatures
               image_words.npy     [images] int32 words each image holds

These arrays are what a search keeps in memory: 4 + D/8 bytes per entry, about one entry
per descriptor or fewer. The descriptors and locations themselves stay on disk and are
read only for the images a shortlist chose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexCorrupt
from .codebook import Codebook
from .kmeans import ASSIGN_BLOCK

FORMAT = 1
ARRAYS = ("word_starts", "entry_image", "entry_bits", "image_words")


@dataclass(frozen=True)
class InvertedFile:
    codebook_version: str
    word_starts: np.ndarray  # [W + 1] int64
    entry_image: np.ndarray  # [E] int32
    entry_bits: np.ndarray  # [E, B] uint8
    image_words: np.ndarray  # [images] int32

    @property
    def entries(self) -> int:
        return int(self.entry_image.shape[0])

    def nbytes(self) -> int:
        return sum(int(getattr(self, a).nbytes) for a in ARRAYS)


def aggregate(
    x: np.ndarray, words: np.ndarray, codebook: Codebook
) -> tuple[np.ndarray, np.ndarray]:
    """One image's (or one query's) signatures: the words present, ascending [k] int64,
    and per word the packed signs of its summed residuals [k, ceil(D / 8)] uint8."""
    if len(x) == 0:
        return np.zeros(0, np.int64), np.zeros((0, codebook.signature_bytes), np.uint8)
    order = np.argsort(words, kind="stable")
    w, xs = words[order].astype(np.int64), np.asarray(x, np.float32)[order]
    present, starts = np.unique(w, return_index=True)
    sums = np.add.reduceat(xs - codebook.rows(w), starts, axis=0)
    return present, np.packbits(sums > 0, axis=1)


class Builder:
    """An inverted file built one image at a time (a segment's writer streams its images
    through it): only the entries are held, about one per descriptor or fewer, and the
    descriptors of the images not yet assigned (up to about ASSIGN_BLOCK rows: a two-level
    codebook's assignment is grouped by cell, worth it over many rows at once)."""

    def __init__(self, codebook: Codebook) -> None:
        self.codebook = codebook
        self._words: list[np.ndarray] = []
        self._images: list[np.ndarray] = []
        self._bits: list[np.ndarray] = []
        self._image_words: list[int] = []
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def add(self, descriptors: np.ndarray) -> None:
        """The next image's unit descriptors."""
        self._pending.append(np.asarray(descriptors, np.float32))
        self._pending_rows += len(descriptors)
        if self._pending_rows >= ASSIGN_BLOCK:
            self._assign()

    def _assign(self) -> None:
        if not self._pending:
            return
        rows = np.concatenate(self._pending)
        words = self.codebook.assign(rows)[:, 0] if len(rows) else np.zeros(0, np.int64)
        lo = 0
        for x in self._pending:
            present, signs = aggregate(x, words[lo : lo + len(x)], self.codebook)
            lo += len(x)
            self._words.append(present)
            self._images.append(np.full(len(present), len(self._image_words), np.int32))
            self._bits.append(signs)
            self._image_words.append(len(present))
        self._pending, self._pending_rows = [], 0

    def finish(self) -> InvertedFile:
        self._assign()
        book = self.codebook
        width = book.signature_bytes
        word = np.concatenate(self._words) if self._words else np.zeros(0, np.int64)
        order = np.argsort(word, kind="stable")  # by word, then by image
        images = np.concatenate(self._images) if self._images else np.zeros(0, np.int32)
        bits = np.concatenate(self._bits) if self._bits else np.zeros((0, width), np.uint8)
        return InvertedFile(
            book.version,
            np.concatenate([[0], np.cumsum(np.bincount(word, minlength=book.words))]),
            images[order],
            bits[order],
            np.array(self._image_words, np.int32),
        )


def carried(parts: list[tuple[InvertedFile, np.ndarray]], words: int) -> InvertedFile:
    """The inverted file of images taken from others built with the same codebook (a
    merge): ``parts`` pairs each source with its images' new numbers (-1: left out). The
    same entries a build from the images' rows gives, without assigning them again."""
    word, image, bits = [], [], []
    image_words = np.zeros(sum(int((new >= 0).sum()) for _, new in parts), np.int32)
    for source, new in parts:
        new = np.asarray(new, np.int64)
        of = np.repeat(np.arange(words, dtype=np.int64), np.diff(source.word_starts))
        number = new[np.asarray(source.entry_image)]
        keep = number >= 0
        word.append(of[keep])
        image.append(number[keep])
        bits.append(np.asarray(source.entry_bits)[keep])
        kept = new >= 0
        image_words[new[kept]] = np.asarray(source.image_words)[kept]
    w = np.concatenate(word)
    i = np.concatenate(image)
    order = np.lexsort((i, w))  # by word, then by image: as Builder.finish orders them
    return InvertedFile(
        parts[0][0].codebook_version,
        np.concatenate([[0], np.cumsum(np.bincount(w, minlength=words))]),
        i[order].astype(np.int32),
        np.concatenate(bits)[order],
        image_words,
    )


def build(
    descriptors: np.ndarray, starts: np.ndarray, counts: np.ndarray, codebook: Codebook
) -> InvertedFile:
    """The inverted file of images whose unit descriptors are ``descriptors[starts[i] :
    starts[i] + counts[i]]``."""
    builder = Builder(codebook)
    for start, count in zip(starts.tolist(), counts.tolist(), strict=True):
        builder.add(descriptors[start : start + count])
    return builder.finish()


def save(inverted: InvertedFile, path: Path) -> None:
    """Write into ``path`` (a folder inside a segment being written; the segment's writer
    fsyncs and renames it)."""
    path.mkdir()
    for name in ARRAYS:
        np.save(path / f"{name}.npy", getattr(inverted, name), allow_pickle=False)
    meta = {
        "format": FORMAT,
        "codebook": inverted.codebook_version,
        "words": len(inverted.word_starts) - 1,
        "entries": inverted.entries,
    }
    (path / "meta.json").write_text(json.dumps(meta))


def load(path: Path, images: int) -> InvertedFile:
    """Mapped from ``path``: its pages are read as searches touch them."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise IndexCorrupt(f"{path}: inverted file format {meta.get('format')} unknown")
        # plain arrays over the mapping: a memmap's own slices cost a Python call each,
        # and a query slices a few thousand word lists
        arrays = {n: np.asarray(np.load(path / f"{n}.npy", mmap_mode="r")) for n in ARRAYS}
    except IndexCorrupt:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"{path}: cannot load the inverted file ({exc})") from None
    inverted = InvertedFile(meta["codebook"], **arrays)
    if (
        len(inverted.word_starts) != meta["words"] + 1
        or inverted.entries != meta["entries"]
        or len(inverted.entry_bits) != meta["entries"]
        or len(inverted.image_words) != images
        or int(inverted.word_starts[-1]) != meta["entries"]
    ):
        raise IndexCorrupt(f"{path}: the inverted file's arrays disagree with its meta.json")
    return inverted

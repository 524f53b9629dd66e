"""The MANIFEST of an index directory: which segments and logs are live, and what was
removed. JSON, replaced atomically (write, fsync, rename, fsync the directory).

Format 5 (written now): format 4 and the folder of the words the index used before its
current ones, while segments built with them remain (vocabulary.py). Format 4 (read):
format 3 and the folder of the index's visual words, whose segments may be in format 4
(segment.py). Format 3 (read): logs
may hold the index's own records (records.py). Format 2 (read): the same fields, logs of
API messages. An older directory loads as it is and its manifest is rewritten as format 5
at once; format 2's old logs are replayed until a seal moves their images into a segment
and deletes them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import IndexCorrupt, IndexLocked
from .wal import fsync_dir

log = logging.getLogger(__name__)

NAME = "MANIFEST"
# 4: the index may have visual words (a "codebook" folder) and segments in format 4, which
# code that writes 3 cannot read: it refuses the directory by this number. 5: and the words
# it had before (code that writes 4 would delete their folder, unnamed to it)
FORMAT = 5
READABLE = (2, 3, 4, 5)


@dataclass(frozen=True)
class Manifest:
    backend: str = ""
    dimension: int = 0
    generation: int = 0
    next: int = 1  # number of the next segment or log name
    segments: tuple[str, ...] = ()
    wals: tuple[str, ...] = ()
    removed: frozenset[tuple[str, str]] = frozenset()  # (segment name, image id)
    codebook: str = ""  # the folder of the index's visual words, once fitted
    # the folder of the words fitted before them, while segments built with them remain
    previous_codebook: str = ""
    format: int = FORMAT


def read(index_dir: Path) -> Manifest:
    path = index_dir / NAME
    if not path.exists():
        return Manifest()
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise IndexCorrupt(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") not in READABLE:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise IndexCorrupt(
            f"{path}: index format {found} is not one this service reads "
            f"({', '.join(map(str, READABLE))})"
        )
    try:
        return Manifest(
            backend=raw["backend"],
            dimension=int(raw["dimension"]),
            generation=int(raw["generation"]),
            next=int(raw["next"]),
            segments=tuple(raw["segments"]),
            wals=tuple(raw["wals"]),
            removed=frozenset((seg, image_id) for seg, image_id in raw["removed"]),
            codebook=str(raw.get("codebook", "")),
            previous_codebook=str(raw.get("previous_codebook", "")),
            format=raw["format"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexCorrupt(f"{path}: a field is missing or malformed ({exc!r})") from None


def write(index_dir: Path, manifest: Manifest) -> None:
    body = {
        "format": FORMAT,
        "backend": manifest.backend,
        "dimension": manifest.dimension,
        "generation": manifest.generation,
        "next": manifest.next,
        "segments": list(manifest.segments),
        "wals": list(manifest.wals),
        "removed": sorted(map(list, manifest.removed)),
        "codebook": manifest.codebook,
        "previous_codebook": manifest.previous_codebook,
    }
    tmp = index_dir / f".{NAME}.tmp"
    with open(tmp, "w") as fh:
        json.dump(body, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / NAME)
    fsync_dir(index_dir)


def remove_unlisted(index_dir: Path, manifest: Manifest) -> None:
    """Delete what an interrupted change left behind: segments and logs the manifest does
    not name, and temporary files. They are never loaded."""
    keep = {*manifest.segments, *manifest.wals, manifest.codebook, NAME, "LOCK"}
    keep.add(manifest.previous_codebook)
    for p in index_dir.iterdir():
        if p.name not in keep and p.name.startswith(("seg-", "wal-", "words-", ".tmp", ".")):
            log.info("removing %s (not in the manifest: left by an interrupted change)", p)
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def lock(index_dir: Path) -> IO[str]:
    """Hold the directory's LOCK (flock) for this process; IndexLocked when another holds
    it. The lock lasts while the returned file stays open."""
    fh = open(index_dir / "LOCK", "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise IndexLocked(
            f"{index_dir} is in use by another search process; one process owns an index "
            "directory (run replicas on copies of it)"
        ) from None
    return fh

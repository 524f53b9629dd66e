"""The pure core of the search service: add, remove, search and describe one index.

Searches read an immutable Snapshot; a change builds a new generation on disk, commits
it atomically and swaps the snapshot reference, so searches never wait for writers and
never see a half-applied change. Writers are serialised by one lock.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from landmark_client.wire import Features

from . import index_store
from .errors import AlreadyExists, FeatureMismatch, InvalidRequest
from .index_store import ImageData, ImageMeta, Snapshot
from .matching import Putative, ann_lookup, gather_hits, putative_matches, shortlist, vote
from .verify import Verification, VerifyParams, verify

log = logging.getLogger(__name__)

MAX_TOP_K = 1000
MAX_ID_LENGTH = 1024


@dataclass(frozen=True)
class SearchParams:
    k: int = 10  # neighbours per query descriptor
    search_k: int = 0  # Annoy nodes inspected per lookup; 0 = k * n_trees * 3
    shortlist: int = 30  # best-voted images verified
    min_votes: int = 4
    ratio: float = 0.9  # within-image second-neighbour ratio test
    max_distance: float = 0.9  # on L2-normalised descriptors (0..2)
    min_inliers: int = 12
    verify: VerifyParams = field(default_factory=VerifyParams)


class OnConflict(Enum):
    ERROR = 0
    SKIP = 1
    REPLACE = 2


@dataclass(frozen=True)
class Candidate:
    image: ImageMeta
    inliers: int
    votes: int
    putative: int
    query_locations: np.ndarray | None = None
    database_locations: np.ndarray | None = None
    transform: np.ndarray | None = None


@dataclass(frozen=True)
class Timing:
    ann_ms: float = 0.0
    aggregate_ms: float = 0.0
    verify_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class SearchResult:
    candidates: list[Candidate]
    min_inliers: int
    timing: Timing

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


@dataclass(frozen=True)
class AddResult:
    added: int
    skipped: int
    replaced: int


class SearchEngine:
    def __init__(
        self,
        index_dir: Path,
        params: SearchParams | None = None,
        n_trees: int = 16,
        threads: int = 2,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.params = params or SearchParams()
        self.n_trees = n_trees
        self.snapshot: Snapshot = index_store.load(self.index_dir)
        self._write_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, "ann") if threads > 1 else None
        log.info(
            "index %s: %d images, %d descriptors (generation %d)",
            self.index_dir,
            len(self.snapshot.images),
            self.snapshot.num_descriptors,
            self.snapshot.generation,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    # -- writes -------------------------------------------------------------------------

    def add(
        self,
        entries: list[tuple[str, str, dict[str, str], Features]],
        on_conflict: OnConflict = OnConflict.ERROR,
    ) -> AddResult:
        """Add (image_id, label, metadata, features) entries; all or nothing."""
        if not entries:
            return AddResult(0, 0, 0)
        ids = [e[0] for e in entries]
        for image_id in ids:
            _check_id(image_id)
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise InvalidRequest(f"image ids repeat within the request: {dup}")
        backends = {(f.backend, f.dimension) for _, _, _, f in entries}
        if len(backends) > 1:
            raise FeatureMismatch(f"one request mixes feature kinds {sorted(backends)}")
        backend, dimension = backends.pop()
        with self._write_lock:
            snap = self.snapshot
            if snap.images and (snap.backend, snap.dimension) != (backend, dimension):
                raise FeatureMismatch(
                    f"this index holds {snap.backend} features ({snap.dimension}-D); these are "
                    f"{backend} ({dimension}-D). Use the extractor backend the index was built "
                    f"with, or a separate index directory for {backend}"
                )
            present = [i for i in ids if i in snap.by_id]
            if present and on_conflict is OnConflict.ERROR:
                raise AlreadyExists(
                    f"{len(present)} image id(s) already in the index, e.g. {present[:3]}; "
                    "remove them first or add with on_conflict SKIP or REPLACE"
                )
            skip = set(present) if on_conflict is OnConflict.SKIP else set()
            replace = set(present) if on_conflict is OnConflict.REPLACE else set()
            new = [
                ImageData(
                    i,
                    label,
                    f.descriptors,
                    f.locations,
                    f.image_size[0],
                    f.image_size[1],
                    dict(meta),
                )
                for i, label, meta, f in entries
                if i not in skip
            ]
            if new:
                kept = [
                    snap.image_data(j)
                    for j, m in enumerate(snap.images)
                    if m.image_id not in replace
                ]
                self._rebuild(kept + new, backend, dimension)
            return AddResult(len(new) - len(replace), len(skip), len(replace))

    def remove(self, image_ids: list[str]) -> tuple[int, list[str]]:
        with self._write_lock:
            snap = self.snapshot
            gone = set(image_ids)
            found = gone & set(snap.by_id)
            if found:
                kept = [
                    snap.image_data(j) for j, m in enumerate(snap.images) if m.image_id not in gone
                ]
                self._rebuild(kept, snap.backend if kept else "", snap.dimension if kept else 0)
            return len(found), sorted(gone - found)

    def _rebuild(self, images: list[ImageData], backend: str, dimension: int) -> None:
        generation = self.snapshot.generation + 1
        work = index_store.new_workdir(self.index_dir)
        built = index_store.build_snapshot(
            images, backend, dimension, generation, self.n_trees, work
        )
        final = index_store.commit(self.index_dir, work, generation)
        self.snapshot = index_store.load(self.index_dir)
        del built
        index_store.remove_stale(self.index_dir, keep=final.name)

    # -- reads --------------------------------------------------------------------------

    def search(
        self,
        features: Features,
        top_k: int = 10,
        shortlist_size: int = 0,
        min_inliers: int = 0,
        exclude: list[str] | tuple[str, ...] = (),
        include_matches: bool = False,
    ) -> SearchResult:
        start = time.perf_counter()
        p = self.params
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        if shortlist_size < 0 or min_inliers < 0:
            raise InvalidRequest("shortlist and min_inliers must not be negative (0 = default)")
        shortlist_size = min(shortlist_size or p.shortlist, MAX_TOP_K)
        min_inliers = min_inliers or p.min_inliers
        snap = self.snapshot
        if len(features) == 0 or not snap.images:
            return SearchResult([], min_inliers, Timing(total_ms=_ms(start)))
        if (features.backend, features.dimension) != (snap.backend, snap.dimension):
            raise FeatureMismatch(
                f"query features are {features.backend} ({features.dimension}-D) but this index "
                f"holds {snap.backend} features ({snap.dimension}-D); extract with the "
                f"{snap.backend} "
                "backend"
            )
        excluded = np.array([snap.by_id[i] for i in exclude if i in snap.by_id], np.int32)

        t0 = time.perf_counter()
        search_k = p.search_k or p.k * snap.n_trees * 3
        ids, dists = ann_lookup(snap.annoy, features.descriptors, p.k, search_k, self._pool)
        t1 = time.perf_counter()
        hits = gather_hits(ids, dists, snap.row_image, excluded)
        votes = vote(hits, len(snap.images))
        chosen = shortlist(votes, shortlist_size, p.min_votes)
        putatives = putative_matches(hits, chosen, p.ratio, p.max_distance)
        t2 = time.perf_counter()

        def check(put: Putative) -> tuple[Putative, Verification]:
            src = features.locations[put.query]
            dst = np.asarray(snap.locations[put.row])
            return put, verify(src, dst, tuple(snap.image_sizes[put.image]), p.verify)

        # OpenCV releases the GIL: candidates are verified on both cores.
        checked = (
            self._pool.map(check, putatives)
            if self._pool is not None and len(putatives) > 1
            else map(check, putatives)
        )
        found: list[Candidate] = []
        for put, result in checked:
            if result.inliers < min_inliers:
                continue
            found.append(
                Candidate(
                    image=snap.images[put.image],
                    inliers=result.inliers,
                    votes=int(votes[put.image]),
                    putative=int(put.query.size),
                    query_locations=features.locations[put.query][result.mask]
                    if include_matches
                    else None,
                    database_locations=np.asarray(snap.locations[put.row])[result.mask]
                    if include_matches
                    else None,
                    transform=result.transform,
                )
            )
        t3 = time.perf_counter()
        found.sort(key=lambda c: (-c.inliers, -c.votes, c.image.image_id))
        timing = Timing((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, _ms(start))
        return SearchResult(found[:top_k], min_inliers, timing)

    def info(self) -> dict[str, float | int | str]:
        snap = self.snapshot
        on_disk = snap.bytes_on_disk()
        n = snap.num_descriptors
        return {
            "images": len(snap.images),
            "descriptors": n,
            "dimension": snap.dimension,
            "backend": snap.backend,
            "bytes_on_disk": on_disk,
            "bytes_per_descriptor": on_disk / n if n else 0.0,
            "labels": len({m.label for m in snap.images}),
            "generation": snap.generation,
        }

    def list_images(self, after: str, limit: int) -> list[ImageMeta]:
        metas = sorted(self.snapshot.images, key=lambda m: m.image_id)
        lo = bisect.bisect_right([m.image_id for m in metas], after) if after else 0
        return metas[lo : lo + limit]


def _check_id(image_id: str) -> None:
    if not image_id or len(image_id) > MAX_ID_LENGTH:
        raise InvalidRequest(f"image_id must be 1-{MAX_ID_LENGTH} characters, got {image_id!r:.60}")


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3

"""The pure core of the search service: add, remove, search and describe one index.

Searches read the store's current View (immutable, swapped whole by every change), so they
never wait for writers and never see a half-applied change; a search is its first stage
(shortlist.first_stage, over the view) and then searching.from_first_stage: shortlist →
exact matches → verification → ranking.
Writes are decided by the Writer (writing.py) and go log → buffer → seal → merge (store.py).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from landmark.wire import Features

from .errors import Cancelled, FeatureMismatch, InvalidRequest
from .index.images import ImageMeta
from .index.store_settings import StoreSettings
from .index.view import View
from .index.wiring import Index
from .index.writing import AddResult, OnConflict
from .limits import RequestLimits, check_add, check_query_size, check_search_args
from .search.blas import single_threaded_blas
from .search.exact_matches import view_matcher
from .search.hits import Hits, WordChoice
from .search.ranking import SearchResult, Timing
from .search.search_params import THREADS, SearchParams
from .search.searching import Comparison, compare, from_first_stage
from .search.shortlist import first_stage
from .search.verify import FailureCount

__all__ = ["AddResult", "OnConflict", "RequestLimits", "SearchEngine"]

log = logging.getLogger(__name__)


class SearchEngine:
    def __init__(
        self,
        index_dir: Path,
        params: SearchParams | None = None,
        threads: int = THREADS,
        store_settings: StoreSettings | None = None,
        background: bool = True,
        limits: RequestLimits | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.params = params or SearchParams()
        self.verify_failures = FailureCount()  # candidates whose verification raised
        self.limits = limits or RequestLimits()
        self.index = Index(self.index_dir, store_settings, background)
        self.store = self.index.store
        self.writer = self.index.writer
        self._pool = ThreadPoolExecutor(threads, "ann") if threads > 1 else None
        single_threaded_blas()  # parallelism comes from the pool, not from BLAS
        info = self.info()
        log.info(
            "index %s: %d images, %d descriptors in %d segments (generation %d)",
            self.index_dir,
            info["images"],
            info["descriptors"],
            info["segments"],
            info["generation"],
        )

    def close(self) -> None:
        self.index.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    # -- writes -------------------------------------------------------------------------

    def add(
        self,
        entries: list[tuple[str, str, dict[str, str], Features]],
        on_conflict: OnConflict = OnConflict.ERROR,
    ) -> AddResult:
        """Add (image_id, label, metadata, features) entries; all or nothing, durable
        and searchable when this returns."""
        if not entries:
            return AddResult(0, 0, 0)
        kind = check_add(self.limits, entries)
        return self.writer.add(entries, kind, on_conflict)

    def remove(self, image_ids: list[str]) -> tuple[int, list[str]]:
        return self.writer.remove(image_ids)

    # -- reads --------------------------------------------------------------------------

    def search(
        self,
        features: Features,
        top_k: int = 10,
        shortlist_size: int = 0,
        min_inliers: int = 0,
        exclude: list[str] | tuple[str, ...] = (),
        include_matches: bool = False,
        include_rejected: bool = False,
        alive: Callable[[], bool] | None = None,
    ) -> SearchResult:
        """Rank the indexed images for ``features``. ``alive`` is polled between stages;
        when it answers False the search stops with Cancelled."""
        return self._search(
            features, top_k, shortlist_size, min_inliers, exclude, include_matches,
            include_rejected, alive,
        )  # fmt: skip

    def _search(
        self,
        features: Features,
        top_k: int,
        shortlist_size: int,
        min_inliers: int,
        exclude: list[str] | tuple[str, ...],
        include_matches: bool,
        include_rejected: bool,
        alive: Callable[[], bool] | None,
    ) -> SearchResult:
        start = time.perf_counter()
        p = self.params
        check_search_args(self.limits, len(features), top_k, shortlist_size, min_inliers)
        shortlist_size = shortlist_size or p.shortlist
        alive = alive or (lambda: True)
        min_inliers = p.min_inliers_for(features.backend, min_inliers)
        t0 = time.perf_counter()
        view = self.store.view
        if len(features) == 0 or not view.by_id:
            return SearchResult([], min_inliers, Timing(total_ms=_ms(start)))
        _check_kind(view, features)
        skip = np.array([view.by_id[i] for i in exclude if i in view.by_id], np.int64)
        words, hits = first_stage(view, features, p, shortlist_size, skip, self._pool)
        if not alive():
            raise Cancelled("the caller went away during the first stage")
        return from_first_stage(
            features,
            words,
            hits,
            view.images,
            view_matcher(view, features.descriptors, p.ratio, p.max_distance, self._pool, alive),
            p,
            top_k=top_k,
            shortlist_size=shortlist_size,
            min_inliers=min_inliers,
            neighbours_ms=_ms(t0),
            started=start,
            include_matches=include_matches,
            include_rejected=include_rejected,
            alive=alive,
            pool=self._pool,
            failures=self.verify_failures,
        )

    def match(
        self,
        features: Features,
        image_ids: list[str],
        alive: Callable[[], bool] | None = None,
    ) -> list[tuple[ImageMeta, np.ndarray, np.ndarray]]:
        """Exact mutual matches of the query with the named images (those present):
        (image, query keypoint indices, database (x, y) locations) per image."""
        view = self.store.view
        if len(image_ids) > self.limits.max_top_k:
            raise InvalidRequest(
                f"at most {self.limits.max_top_k} images per match request, got {len(image_ids)}"
            )
        check_query_size(self.limits, len(features))
        present = np.array([view.by_id[i] for i in image_ids if i in view.by_id], np.int64)
        if present.size:
            _check_kind(view, features)
        p = self.params
        matcher = view_matcher(
            view, features.descriptors, p.ratio, p.max_distance, self._pool, alive or (lambda: True)
        )
        puts = matcher(present)
        return [(view.images[p.image], p.query, p.locations) for p in puts]

    def compare(self, query: Features, reference: Features, min_inliers: int = 0) -> Comparison:
        """Match two feature sets with each other and verify, as a search would."""
        check_query_size(self.limits, len(query))
        check_query_size(self.limits, len(reference))
        return compare(query, reference, self.params, min_inliers)

    def neighbours(
        self,
        features: Features,
        k: int = 0,
        exclude: list[str] | tuple[str, ...] = (),
        alive: Callable[[], bool] | None = None,
        shortlist: int = 0,
    ) -> tuple[list[ImageMeta], Hits, WordChoice]:
        """The first half of a search, for a coordinator (shortlist.first_stage): the k
        nearest live rows of the query's descriptors among the images without words, and
        the ``shortlist`` best images by words. Returns the images either names, and the
        hits and word choice (their image numbers index that list)."""
        if not 0 <= k <= 100:
            raise InvalidRequest(f"k must be between 0 (default) and 100, got {k}")
        check_search_args(self.limits, len(features), 1, shortlist, 0)
        view = self.store.view
        if len(features) == 0 or not view.by_id:
            return [], Hits.empty(), WordChoice.empty()
        _check_kind(view, features)
        skip = np.array([view.by_id[i] for i in exclude if i in view.by_id], np.int64)
        p = replace(self.params, k=k or self.params.k)
        size = shortlist or p.shortlist
        words, hits = first_stage(view, features, p, size, skip, self._pool)
        if alive and not alive():
            raise Cancelled("the caller went away during the first stage")
        used = np.unique(np.concatenate([hits.image, words.image]).astype(np.int64))
        local = np.searchsorted(used, hits.image).astype(np.int32)
        mine = replace(words, image=np.searchsorted(used, words.image))
        images = [view.images[i] for i in used]
        return images, Hits(hits.query, hits.row, local, hits.dist), mine

    def info(self) -> dict[str, float | int | str]:
        view = self.store.view
        on_disk = self.store.bytes_on_disk()
        n = sum(s.rows for s in view.segments) + int(view.growing_descriptors.shape[0])
        in_memory = (
            sum(s.bytes_in_memory() for s in view.segments)
            + int(view.growing_descriptors.nbytes)
            + sum(b.bytes_in_memory() for b in (view.codebook, view.previous_codebook) if b)
        )
        return {
            "images": view.live_images,
            "descriptors": n,
            "dimension": view.dimension,
            "backend": view.backend,
            "bytes_on_disk": on_disk,
            "bytes_per_descriptor": on_disk / n if n else 0.0,
            "bytes_in_memory": in_memory,
            "memory_bytes_per_descriptor": in_memory / n if n else 0.0,
            "codebook_version": view.codebook.version if view.codebook else "",
            "labels": view.label_count,
            "generation": view.generation,
            "segments": len(view.segments),
            "growing_descriptors": int(view.growing_descriptors.shape[0]),
            "disk_full": self.store.disk.disk_full,
            "settled": self.index.settled(),
            "verify_failures": self.verify_failures.value,
        }

    def labels(self) -> list[str]:
        """The distinct labels of the live images, sorted."""
        view = self.store.view
        return sorted({view.images[i].label for i in view.by_id.values()})

    def list_images(self, after: str, limit: int) -> list[ImageMeta]:
        view = self.store.view
        ids = sorted(view.by_id)
        lo = bisect.bisect_right(ids, after) if after else 0
        return [view.images[view.by_id[i]] for i in ids[lo : lo + limit]]


def _check_kind(view: View, features: Features) -> None:
    if (features.backend, features.dimension) != (view.backend, view.dimension):
        raise FeatureMismatch(
            f"query features are {features.backend} ({features.dimension}-D) but this index "
            f"holds {view.backend} features ({view.dimension}-D); extract with the "
            f"{view.backend} backend"
        )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3

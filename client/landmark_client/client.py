"""Synchronous clients: one per service, and LandmarkClient that chains them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import grpc

from landmark.connection import Connection
from landmark.v1 import extractor_pb2_grpc, search_pb2_grpc
from landmark.wire import Features

from . import _convert as conv
from . import _ops as ops
from ._core import DEFAULT_TIMEOUT, _Client, drive, extractor_address, search_address
from .errors import LandmarkError
from .gallery import DISTRACTOR_LABEL
from .images import ImageInput
from .indexing import index_gallery
from .ingest import ingest
from .progress import ProgressBar
from .types import (
    AddResult,
    Comparison,
    ExtractItem,
    ExtractorInfo,
    ImageRecord,
    ImageToAdd,
    IndexInfo,
    IngestReport,
    Photo,
    Recognition,
    SearchResult,
)

T = TypeVar("T")


class ExtractorClient(_Client):
    """Client of the extractor service (address default: $LANDMARK_EXTRACTOR)."""

    _kind = ops.EXTRACTOR
    _service = "extractor"
    _health_name = "landmark.v1.Extractor"
    _stub_class = extractor_pb2_grpc.ExtractorStub
    _default_address = staticmethod(extractor_address)

    def extract(
        self,
        image: ImageInput,
        *,
        max_features: int = 0,
        max_image_size: int = 0,
        score_threshold: float | None = None,
        image_scales: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Features:
        """Local features of one image (a path, bytes, numpy array or PIL image).

        ``score_threshold`` and ``image_scales`` are options of the delf backend."""
        op = ops.extract(
            image, max_features, max_image_size, score_threshold, image_scales, timeout
        )
        return self._run(op)

    def extract_many(
        self,
        images: Iterable[tuple[str, ImageInput]],
        *,
        max_features: int = 0,
        max_image_size: int = 0,
        score_threshold: float | None = None,
        image_scales: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Iterator[ExtractItem]:
        """Bulk extraction over one stream: (request_id, image) pairs in, one ExtractItem
        per image out, in order. A bad image yields an item with ``error`` set."""
        requests = (
            conv.extract_request(
                img, max_features, max_image_size, rid, score_threshold, image_scales
            )
            for rid, img in images
        )
        try:
            stub = self._stubs[self._rotation.pick()]
            for response in stub.ExtractStream(
                requests,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self.connection.metadata,
            ):
                yield conv.extract_item(response)
        except grpc.RpcError as err:
            raise LandmarkError.from_rpc(err, self._service, self.address) from None

    def info(self, *, timeout: float | None = None) -> ExtractorInfo:
        return self._run(ops.extractor_info(timeout))


class SearchClient(_Client):
    """Client of the search service (address default: $LANDMARK_SEARCH)."""

    _kind = ops.SEARCH
    _service = "search service"
    _health_name = "landmark.v1.Search"
    _stub_class = search_pb2_grpc.SearchStub
    _default_address = staticmethod(search_address)

    def add_images(
        self,
        images: Iterable[ImageToAdd],
        *,
        on_conflict: str = "error",
        timeout: float | None = None,
    ) -> AddResult:
        """Add images with their features; on_conflict is "error", "skip" or "replace".
        Large inputs go in several requests; each request is all-or-nothing."""
        return self._run(ops.add_images(images, on_conflict, timeout))

    def remove_images(
        self, image_ids: Iterable[str], *, timeout: float | None = None
    ) -> tuple[int, list[str]]:
        """Remove images; returns (removed count, ids that were not in the index)."""
        return self._run(ops.remove_images(image_ids, timeout))

    def search(
        self,
        features: Features,
        *,
        top_k: int = 10,
        shortlist: int = 0,
        min_inliers: int = 0,
        exclude: Iterable[str] = (),
        include_matches: bool = False,
        include_rejected: bool = False,
        allow_partial: bool = False,
        timeout: float | None = None,
    ) -> SearchResult:
        """Verified candidates for ``features``; ``exclude`` never returns those ids;
        ``include_rejected`` appends the candidates below min_inliers (full ranking);
        ``allow_partial`` (through a coordinator) answers from the shards that are up."""
        op = ops.search(
            features,
            top_k,
            shortlist,
            min_inliers,
            exclude,
            include_matches,
            include_rejected,
            allow_partial,
            timeout,
        )
        return self._run(op)

    def compare(
        self,
        query: Features,
        reference: Features,
        *,
        min_inliers: int = 0,
        timeout: float | None = None,
    ) -> Comparison:
        """Match two feature sets with each other and verify, as a search verifies a
        candidate (the index is not involved); ``min_inliers`` 0 = the service's."""
        return self._run(ops.compare(query, reference, min_inliers, timeout))

    def index_info(self, *, timeout: float | None = None) -> IndexInfo:
        return self._run(ops.index_info(timeout))

    def list_images(
        self, *, page_size: int = 1000, timeout: float | None = None
    ) -> Iterator[ImageRecord]:
        token = ""
        while True:
            records, token = self._run(ops.image_page(page_size, token, timeout))
            yield from records
            if not token:
                return


class LandmarkClient:
    """Chains the two services: photo → extractor → search → the landmark it shows."""

    def __init__(
        self,
        extractor: str | None = None,
        search: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connection: Connection | None = None,
    ) -> None:
        self.timeout = timeout
        self.extractor = ExtractorClient(extractor, timeout=timeout, connection=connection)
        self.search = SearchClient(search, timeout=timeout, connection=connection)

    def _run(self, op: ops.Op[T]) -> T:
        return drive(op, {ops.EXTRACTOR: self.extractor, ops.SEARCH: self.search})

    def recognize(
        self,
        image: ImageInput,
        *,
        top_k: int = 5,
        include_matches: bool = False,
        exclude: Iterable[str] = (),
        timeout: float | None = None,
    ) -> Recognition:
        """Which indexed landmark ``image`` shows. ``timeout`` bounds both calls together."""
        budget = self.timeout if timeout is None else timeout
        return self._run(ops.recognize(image, top_k, include_matches, exclude, budget))

    def compare(
        self, image: ImageInput, reference: ImageInput, *, timeout: float | None = None
    ) -> Comparison:
        """The verified correspondences between two photos (what ``landmark match`` draws).
        ``timeout`` bounds the three calls together."""
        budget = self.timeout if timeout is None else timeout
        return self._run(ops.compare_photos(image, reference, budget))

    def add_image(
        self,
        image: ImageInput,
        image_id: str,
        label: str,
        *,
        metadata: dict[str, str] | None = None,
        on_conflict: str = "error",
        timeout: float | None = None,
    ) -> AddResult:
        """Extract ``image`` and add it to the index under ``image_id`` / ``label``."""
        op = ops.add_image(image, image_id, label, metadata, on_conflict, timeout)
        return self._run(op)

    def ingest(
        self,
        photos: Iterable[Photo],
        *,
        on_conflict: str = "skip",
        timeout: float | None = None,
        progress: ProgressBar | None = None,
    ) -> IngestReport:
        """Extract and add ``photos`` (any iterable, read lazily) through every extractor
        replica (ingest.py); a photo that fails is reported in ``failed``, the run goes on."""
        return ingest(
            photos,
            self.extractor,
            self.search,
            on_conflict=on_conflict,
            timeout=self.timeout if timeout is None else timeout,
            progress=progress,
        )

    def index_folder(
        self,
        folder: str | Path,
        *,
        distractor_label: str = DISTRACTOR_LABEL,
        show_progress: bool = False,
        timeout: float | None = None,
    ) -> IngestReport:
        """Index a labeled folder (FOLDER/<label>/<photo>): only the photos not yet in
        the index, distractors left out; a rerun goes on where a run stopped."""
        return index_gallery(
            folder, self, distractor_label, show_progress=show_progress, timeout=timeout
        )

    def close(self) -> None:
        self.extractor.close()
        self.search.close()

    def __enter__(self) -> LandmarkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

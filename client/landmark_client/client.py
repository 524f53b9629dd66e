"""Synchronous clients: one per service, and LandmarkClient that chains them."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from landmark.connection import Connection, Rotation, replicas
from landmark.v1 import extractor_pb2, extractor_pb2_grpc, search_pb2, search_pb2_grpc
from landmark.wire import Features

from . import _convert as conv
from .errors import LandmarkError
from .images import ImageInput
from .types import (
    AddResult,
    ExtractItem,
    ExtractorInfo,
    ImageRecord,
    ImageToAdd,
    IndexInfo,
    Recognition,
    SearchResult,
)

DEFAULT_EXTRACTOR = "127.0.0.1:50051"
DEFAULT_SEARCH = "127.0.0.1:50052"
DEFAULT_TIMEOUT = 30.0

T = TypeVar("T")


def extractor_address(address: str | None = None) -> str:
    return address or os.environ.get("LANDMARK_EXTRACTOR") or DEFAULT_EXTRACTOR


def search_address(address: str | None = None) -> str:
    return address or os.environ.get("LANDMARK_SEARCH") or DEFAULT_SEARCH


class _ClientCore:
    """What the sync and asyncio clients share: replicas, stubs, deadlines, retries."""

    _service = ""
    _health_name = ""
    _stub_class: Any = None
    _default_address: Any = None
    _aio = False

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connection: Connection | None = None,
    ) -> None:
        """``address``: host:port, a comma-separated list of replicas, or a DNS name of
        several (default from the environment); ``timeout`` in seconds for every call;
        ``connection``: token and TLS (default: ``Connection.from_env()``)."""
        self.address = self._default_address(address)
        self.timeout = timeout
        self.connection = connection or Connection.from_env()
        make = self.connection.aio_channel if self._aio else self.connection.channel
        self._channels = [make(a) for a in replicas(self.address)]
        self._rotation = Rotation(self._channels)
        self._stubs = [self._stub_class(ch) for ch in self._channels]
        self._health = [health_pb2_grpc.HealthStub(ch) for ch in self._channels]

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _attempt(self, method: str, stubs: list[Any] | None, deadline: float):  # noqa: ANN202
        """The next replica's ``method`` and the keyword arguments of one try."""
        stub = (stubs or self._stubs)[self._rotation.pick()]
        kwargs = {
            "timeout": max(0.001, deadline - time.monotonic()),
            "metadata": self.connection.metadata,
        }
        return getattr(stub, method), kwargs

    def _backoff(self, err: grpc.RpcError, attempt: int, deadline: float, retry: bool) -> float:
        """Seconds to wait before retrying on the next replica, or raise LandmarkError."""
        wait = self.connection.retry_after(err, attempt, deadline, retry)
        if wait is None:
            raise LandmarkError.from_rpc(err, f"{self._service} at {self.address}") from None
        return wait


class _Client(_ClientCore):
    def _call(
        self,
        method: str,
        request: Any,
        timeout: float | None,
        *,
        retry: bool = True,
        stubs: list[Any] | None = None,
    ) -> Any:
        """Call ``method`` on the next replica; UNAVAILABLE is retried on the next one with
        backoff (when ``retry``) as long as the deadline allows."""
        deadline = self._deadline(timeout)
        for attempt in itertools.count():
            call, kwargs = self._attempt(method, stubs, deadline)
            try:
                return call(request, **kwargs)
            except grpc.RpcError as err:
                wait = self._backoff(err, attempt, deadline, retry)
            time.sleep(wait)

    def health(self, timeout: float | None = None) -> str:
        """The standard gRPC health status of the service, e.g. "SERVING"."""
        request = health_pb2.HealthCheckRequest(service=self._health_name)
        response = self._call("Check", request, timeout, retry=False, stubs=self._health)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the service reports SERVING; LandmarkError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.health(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                if last == "SERVING":
                    return
            except LandmarkError as err:
                last = err.code.name
            time.sleep(0.1)
        raise LandmarkError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"{self._service} at {self.address} not ready after {timeout}s (last status: {last})",
        )

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExtractorClient(_Client):
    """Client of the extractor service (address default: $LANDMARK_EXTRACTOR)."""

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
        request = conv.extract_request(
            image, max_features, max_image_size, "", score_threshold, image_scales
        )
        return conv.features_from_proto(self._call("Extract", request, timeout).features)

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
            raise LandmarkError.from_rpc(err, f"{self._service} at {self.address}") from None

    def info(self, *, timeout: float | None = None) -> ExtractorInfo:
        request = extractor_pb2.GetExtractorInfoRequest()
        return conv.extractor_info(self._call("GetExtractorInfo", request, timeout))


class SearchClient(_Client):
    """Client of the search service (address default: $LANDMARK_SEARCH)."""

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
        added = skipped = replaced = 0
        for request in conv.add_batches(images, on_conflict):
            r = self._call("AddImages", request, timeout, retry=False)
            added, skipped, replaced = added + r.added, skipped + r.skipped, replaced + r.replaced
        return AddResult(added, skipped, replaced)

    def remove_images(
        self, image_ids: Iterable[str], *, timeout: float | None = None
    ) -> tuple[int, list[str]]:
        """Remove images; returns (removed count, ids that were not in the index)."""
        request = search_pb2.RemoveImagesRequest(image_ids=list(image_ids))
        r = self._call("RemoveImages", request, timeout, retry=False)
        return r.removed, list(r.not_found)

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
        request = conv.search_request(
            features,
            top_k,
            shortlist,
            min_inliers,
            exclude,
            include_matches,
            include_rejected,
            allow_partial,
        )
        return conv.search_result(self._call("Search", request, timeout))

    def index_info(self, *, timeout: float | None = None) -> IndexInfo:
        request = search_pb2.GetIndexInfoRequest()
        return conv.index_info(self._call("GetIndexInfo", request, timeout))

    def list_images(
        self, *, page_size: int = 1000, timeout: float | None = None
    ) -> Iterator[ImageRecord]:
        token = ""
        while True:
            request = search_pb2.ListImagesRequest(page_size=page_size, page_token=token)
            page = self._call("ListImages", request, timeout)
            yield from (conv.image_record(m) for m in page.images)
            token = page.next_page_token
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
        deadline = time.monotonic() + budget
        features = self.extractor.extract(image, timeout=budget)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LandmarkError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"extraction used the whole {budget}s timeout"
            )
        result = self.search.search(
            features,
            top_k=top_k,
            include_matches=include_matches,
            exclude=exclude,
            timeout=remaining,
        )
        return Recognition(features, result)

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
        features = self.extractor.extract(image, timeout=timeout)
        entry = ImageToAdd(image_id, label, features, dict(metadata or {}))
        return self.search.add_images([entry], on_conflict=on_conflict, timeout=timeout)

    def close(self) -> None:
        self.extractor.close()
        self.search.close()

    def __enter__(self) -> LandmarkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

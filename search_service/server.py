"""gRPC edge of the search service: proto → plain values → SearchEngine → proto."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from landmark.v1 import search_pb2, search_pb2_grpc, shard_pb2, shard_pb2_grpc
from serving import runtime
from serving.metrics import Metrics

from .changelog.writes import PROGRESS, ReplicatedWrites, follow
from .config import SearchConfig
from .engine import OnConflict, SearchEngine
from .errors import Cancelled, InvalidRequest
from .messages import compare_request, compare_response, search_response
from .services import ROLES, SERVICE_NAME, SHARD_ROLES, SHARD_SERVICE_NAME
from .sharding import match_to_proto, neighbours_to_proto
from .status import abort
from .validation import request_features

log = logging.getLogger(__name__)

MAX_PAGE = 10000


def on_conflict(value: int) -> OnConflict:
    try:
        return OnConflict(value)
    except ValueError:
        names = ", ".join(f"{c.name} ({c.value})" for c in OnConflict)
        raise InvalidRequest(f"on_conflict {value} is not one of {names}") from None


class SearchServicer(search_pb2_grpc.SearchServicer):
    def __init__(
        self, engine: SearchEngine | None, metrics: Metrics | None = None, shard_index: int = -1
    ) -> None:
        # None while the index loads: calls reach the servicer once the server is SERVING
        self.engine: SearchEngine = engine  # type: ignore[assignment]
        # where adds and removes go: the engine, or the changelog (changelog.writes)
        self.writes: SearchEngine | ReplicatedWrites = engine  # type: ignore[assignment]
        self.shard_index = shard_index
        metrics = metrics or Metrics()
        self._verified = metrics.histogram(
            "landmark_search_candidates_verified",
            "candidate images verified geometrically per search",
            (0, 1, 5, 10, 20, 30, 50, 100, 250, 1000),
        )

    def _info(self) -> search_pb2.IndexInfo:
        info = self.engine.info()
        info.pop("verify_failures")  # a metric, not part of the contract
        return search_pb2.IndexInfo(**info, shards=1, shard_index=self.shard_index)

    def AddImages(self, request, context):  # noqa: N802 (gRPC method name)
        try:
            entries = []
            for i, img in enumerate(request.images):
                features = request_features(img.features, f"images[{i}] ({img.image_id!r})")
                entries.append((img.image_id, img.label, dict(img.metadata), features))
            if not context.is_active():  # nothing written yet: drop the work
                raise Cancelled("the caller went away before the add was applied")
            result = self.writes.add(entries, on_conflict(request.on_conflict))
            return search_pb2.AddImagesResponse(
                added=result.added,
                skipped=result.skipped,
                replaced=result.replaced,
                index=self._info(),
            )
        except Exception as exc:
            abort(context, exc)

    def RemoveImages(self, request, context):  # noqa: N802
        try:
            removed, missing = self.writes.remove(list(request.image_ids))
            return search_pb2.RemoveImagesResponse(
                removed=removed, not_found=missing, index=self._info()
            )
        except Exception as exc:
            abort(context, exc)

    def Search(self, request, context):  # noqa: N802
        try:
            if not request.HasField("features"):
                raise InvalidRequest("features are missing: extract them first")
            features = request_features(request.features)
            opts = request.options
            result = self.engine.search(
                features,
                top_k=request.top_k,
                shortlist_size=opts.shortlist,
                min_inliers=opts.min_inliers,
                exclude=list(opts.exclude_image_ids),
                include_matches=opts.include_matches,
                include_rejected=opts.include_rejected,
                alive=context.is_active,
            )
        except Exception as exc:
            abort(context, exc)
        self._verified.observe(result.verified)
        return search_response(result)

    def Compare(self, request, context):  # noqa: N802
        try:
            query, reference = compare_request(request)
            result = self.engine.compare(query, reference, request.min_inliers)
        except Exception as exc:
            abort(context, exc)
        return compare_response(result)

    def GetIndexInfo(self, request, context):  # noqa: N802
        return self._info()

    def ListImages(self, request, context):  # noqa: N802
        size = request.page_size or 1000
        if not 1 <= size <= MAX_PAGE:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"page_size must be between 1 and {MAX_PAGE}, got {size}",
            )
        page = self.engine.list_images(request.page_token, size + 1)
        response = search_pb2.ListImagesResponse(
            next_page_token=(page[size - 1].image_id if len(page) > size else "")
        )
        for m in page[:size]:
            response.images.add(
                image_id=m.image_id, label=m.label, metadata=m.metadata, num_features=m.count
            )
        return response


class ShardServicer(shard_pb2_grpc.ShardServicer):
    """The two halves of a search a coordinator asks of each shard (landmark.v1.Shard)."""

    def __init__(self, engine: SearchEngine | None) -> None:
        self.engine: SearchEngine = engine  # type: ignore[assignment]

    def Neighbours(self, request, context):  # noqa: N802
        try:
            if not request.HasField("features"):
                raise InvalidRequest("features are missing: extract them first")
            features = request_features(request.features)
            images, hits, words = self.engine.neighbours(
                features,
                request.k,
                list(request.exclude_image_ids),
                alive=context.is_active,
                shortlist=request.shortlist,
            )
            return neighbours_to_proto(images, hits, words)
        except Exception as exc:
            abort(context, exc)

    def Match(self, request, context):  # noqa: N802
        try:
            if not request.HasField("features"):
                raise InvalidRequest("features are missing: extract them first")
            features = request_features(request.features)
            matched = self.engine.match(features, list(request.image_ids), alive=context.is_active)
            return match_to_proto(matched)
        except Exception as exc:
            abort(context, exc)

    def Labels(self, request, context):  # noqa: N802
        try:
            return shard_pb2.LabelsResponse(labels=self.engine.labels())
        except Exception as exc:
            abort(context, exc)


INDEX_GAUGES = {
    "images": "images in the index",
    "descriptors": "descriptors in the index (sealed segments and growing buffer)",
    "segments": "sealed Annoy segments",
    "bytes_on_disk": "bytes the index directory holds",
    "disk_full": "1 while the index disk is too full to take writes (adds are refused)",
    "verify_failures": "candidates skipped because their verification raised (see the log)",
}


@dataclass
class Loading:
    """The index loading behind a listening server: ``done`` is set once ``engine`` is
    serving or ``error`` says why it never will."""

    done: threading.Event = field(default_factory=threading.Event)
    engine: SearchEngine | None = None
    writes: ReplicatedWrites | None = None  # with a changelog
    error: BaseException | None = None


def open_engine(config: SearchConfig) -> SearchEngine:
    """The index in ``config.index_dir``, loaded (its log replayed) and ready to search."""
    if config.shard_index >= 0 and not config.codebook:
        log.warning(
            "shard %d has no --codebook: it fits no words of its own (they would differ from "
            "the other shards') and is searched by its rows, about 320 bytes per descriptor "
            "in memory; start every shard with the same --codebook for about 25",
            config.shard_index,
        )
    return SearchEngine(
        Path(config.index_dir),
        config.search_params(),
        threads=config.threads,
        store_settings=config.store_settings(),
        limits=config.request_limits(),
    )


def start_server(
    config: SearchConfig, load: Callable[[SearchConfig], SearchEngine] = open_engine
) -> tuple[runtime.Running, int, Loading]:
    """Listen on ``config.address`` at once, then load the index in a background thread:
    until it is loaded, health checks answer NOT_SERVING (a probe sees a live process, not
    a refused connection) and calls UNAVAILABLE; then SERVING."""
    metrics = Metrics()
    servicer = SearchServicer(None, metrics, config.shard_index)
    shard = ShardServicer(None)
    services = {
        SERVICE_NAME: lambda s: search_pb2_grpc.add_SearchServicer_to_server(servicer, s),
        SHARD_SERVICE_NAME: lambda s: shard_pb2_grpc.add_ShardServicer_to_server(shard, s),
    }
    running = runtime.start(
        config,
        services,
        {**ROLES, **SHARD_ROLES},
        metrics,
        max_receive_bytes=config.max_message_mb << 20,
        thread_prefix="search",
        starting=f"the index in {config.index_dir} is still loading",
    )
    loading = Loading()

    def run() -> None:
        try:
            engine = load(config)
        except BaseException as exc:  # reported by create_server / main
            loading.error = exc
            loading.done.set()
            return
        servicer.engine = shard.engine = loading.engine = servicer.writes = engine
        if config.changelog:
            try:
                servicer.writes = loading.writes = follow(
                    config,
                    engine,
                    lambda f: metrics.gauges(f.progress, "landmark_changelog", PROGRESS),
                )
            except BaseException as exc:
                loading.error = exc
                loading.done.set()
                return
        metrics.gauges(engine.info, "landmark_index", INDEX_GAUGES)
        running.set_serving(True)
        loading.done.set()
        log.info("index loaded: %d images", engine.info()["images"])

    threading.Thread(target=run, name="index-load", daemon=True).start()
    return running, running.port, loading


def create_server(
    config: SearchConfig, engine: SearchEngine | None = None
) -> tuple[runtime.Running, int, SearchEngine]:
    """Serve the index in ``config.index_dir`` (or ``engine``, already loaded) on
    ``config.address``; returns once it is SERVING (raises what stopped the load).

    Returns the running server (``.stop(grace)``), its port and the engine (close it after
    the server has stopped)."""
    running, port, loading = start_server(
        config, open_engine if engine is None else (lambda _config: engine)
    )
    loading.done.wait()
    if loading.error is not None:
        running.stop(0)
        raise loading.error
    assert loading.engine is not None
    return running, port, loading.engine

"""Coordinator mode of the search service: one Search endpoint over N search shards.

Images live on shard ``shard_of(image_id, N)``. A search asks every shard for the k nearest
descriptors of each query descriptor (Neighbours), keeps the global k nearest and votes
for a shortlist, asks the shards holding the shortlisted images for exact matches
(Match), and verifies them here with the code one index uses, so N shards rank like one
index holding the same images. Adds and removes go to the owning shard. It speaks the same
``landmark.v1.Search`` contract, so callers in any language use it like one search service.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import numpy as np

from landmark.connection import Connection
from landmark.v1 import search_pb2, search_pb2_grpc
from serving import runtime
from serving.config import ServingConfig
from serving.metrics import Metrics
from serving.settings import check_positive, setting

from .engine import RequestLimits, check_search_args
from .errors import InvalidRequest
from .matching import Hits
from .ranking import Matcher, Putative, SearchParams, SearchResult, Timing, rank
from .segment import ImageMeta
from .server import _abort, search_response, serve_search
from .sharding import match_from_proto, neighbours_from_proto, resolve, shard_of
from .validation import request_features

log = logging.getLogger(__name__)

ROW_BITS = 40  # global row = shard << 40 | row within the shard
DISCOVERY_SECONDS = 5.0  # how often DNS is asked again for the shards


@dataclass(frozen=True)
class CoordinatorConfig(ServingConfig):
    host: str = setting("", "LANDMARK_COORDINATOR_HOST")
    port: int = setting(50053, "LANDMARK_COORDINATOR_PORT")
    metrics_port: int = setting(9153, "LANDMARK_COORDINATOR_METRICS_PORT")
    max_rpcs: int = setting(32, "LANDMARK_COORDINATOR_MAX_RPCS")
    # The shards in order (shard i holds the images with shard_of(id, N) == i) ...
    shards: tuple[str, ...] = setting((), "LANDMARK_SHARDS")
    # ... or a DNS name:port resolving to every shard (a headless service) with the count;
    # each shard reports its number (LANDMARK_SHARD_INDEX), which fixes its place.
    shards_dns: str = setting("", "LANDMARK_SHARDS_DNS")
    shard_count: int = setting(0, "LANDMARK_SHARD_COUNT")
    shard_timeout: float = setting(30.0, "LANDMARK_SHARD_TIMEOUT")
    # Calls to the shards carry the caller's bearer token; discovery (and callers without
    # one) use this token, when the shards require one.
    shard_token: str = setting("", "LANDMARK_SHARD_TOKEN")
    threads: int = setting(2, "LANDMARK_SEARCH_THREADS")
    # search settings: the coordinator ranks and verifies, so these are the ones that count
    neighbours: int = setting(5, "LANDMARK_NEIGHBOURS")
    shortlist: int = setting(20, "LANDMARK_SHORTLIST")
    min_inliers: int = setting(0, "LANDMARK_MIN_INLIERS")  # 0 = by feature kind
    ratio: float = setting(0.85, "LANDMARK_RATIO")
    max_top_k: int = setting(1000, "LANDMARK_MAX_TOP_K")
    max_query_features: int = setting(10_000, "LANDMARK_MAX_QUERY_FEATURES")
    max_message_mb: int = setting(256, "LANDMARK_MAX_MESSAGE_MB")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "max_rpcs", "threads", "neighbours", "shortlist", "max_top_k")
        if self.min_inliers < 0:
            raise ValueError(f"min_inliers must not be negative, got {self.min_inliers}")
        if bool(self.shards) == bool(self.shards_dns):
            raise ValueError("give the shards either as a list (shards) or by DNS (shards_dns)")
        if self.shards_dns and self.shard_count < 1:
            raise ValueError("shards_dns needs shard_count, the number of shards")

    def search_params(self) -> SearchParams:
        return SearchParams(
            k=self.neighbours,
            shortlist=self.shortlist,
            min_inliers=self.min_inliers,
            ratio=self.ratio,
        )


class ShardUnavailable(Exception):
    def __init__(self, missing: dict[str, str]) -> None:
        self.missing = missing
        names = ", ".join(f"{name} ({why})" for name, why in missing.items())
        super().__init__(f"shard(s) not answering: {names}")


class ShardError(Exception):
    """A shard refused a request: its status is passed on."""

    def __init__(self, shard: str, error: grpc.RpcError) -> None:
        self.code = error.code()
        super().__init__(f"{shard}: {error.details()}")


class Shards:
    """The shard addresses in shard order, their stubs, and parallel calls to them."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        self.count = config.shard_count if config.shards_dns else len(config.shards)
        self._stubs: dict[str, search_pb2_grpc.SearchStub] = {}
        self._channels: list[grpc.Channel] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(4, 2 * self.count), "shard")
        self._found: dict[int, str] = {}
        self._connection = Connection.from_env()
        token = config.shard_token
        self._own = (("authorization", f"Bearer {token}"),) if token else ()
        self._stop = threading.Event()
        if config.shards_dns:
            # found once before serving, then refreshed in the background: never on a call
            self._discover()
            threading.Thread(target=self._rediscover, name="discovery", daemon=True).start()

    def name(self, i: int) -> str:
        return f"shard {i} ({self.address(i) or 'not found'})"

    def _stub(self, address: str) -> search_pb2_grpc.SearchStub:
        with self._lock:
            if address not in self._stubs:
                # TLS to the shards as for any client: LANDMARK_TLS_CA, LANDMARK_TLS_CLIENT_*
                channel = self._connection.channel(address)
                self._channels.append(channel)
                self._stubs[address] = search_pb2_grpc.SearchStub(channel)
            return self._stubs[address]

    def address(self, i: int) -> str | None:
        if not self.config.shards_dns:
            return self.config.shards[i]
        return self._found.get(i)

    def _rediscover(self) -> None:
        while not self._stop.wait(DISCOVERY_SECONDS):
            self._discover()

    def _discover(self) -> None:
        """Ask every address behind the DNS name which shard it is."""
        found: dict[int, str] = {}
        try:
            addresses = resolve(self.config.shards_dns)
        except OSError as exc:
            log.warning("shard discovery: %s", exc)
            addresses = []
        for address in addresses:
            try:
                info = self._stub(address).GetIndexInfo(
                    search_pb2.GetIndexInfoRequest(), timeout=2.0, metadata=self._own
                )
            except grpc.RpcError:
                continue
            if 0 <= info.shard_index < self.count:
                found[info.shard_index] = address
        self._found = found

    def call(
        self, method: str, requests: dict[int, object], timeout: float, metadata=None
    ) -> tuple[dict, dict]:
        """Call ``method`` on the given shards at once: ({shard: response}, {name: why})."""
        futures = {}
        missing: dict[str, str] = {}
        for i, request in requests.items():
            address = self.address(i)
            if address is None:
                missing[self.name(i)] = "not found by DNS"
                continue
            stub = self._stub(address)
            futures[i] = self._pool.submit(
                getattr(stub, method), request, timeout=timeout, metadata=metadata or self._own
            )
        answers = {}
        for i, future in futures.items():
            try:
                answers[i] = future.result()
            except grpc.RpcError as err:
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    missing[self.name(i)] = err.code().name
                else:
                    raise ShardError(self.name(i), err) from None
        return answers, missing

    def close(self) -> None:
        self._stop.set()
        for channel in self._channels:
            channel.close()
        self._pool.shutdown(wait=False)


class CoordinatorServicer(search_pb2_grpc.SearchServicer):
    def __init__(self, config: CoordinatorConfig, shards: Shards | None = None) -> None:
        self.config = config
        self.shards = shards or Shards(config)
        self.params = config.search_params()
        self.limits = RequestLimits(config.max_top_k, config.max_query_features)
        self._pool = ThreadPoolExecutor(config.threads, "verify") if config.threads > 1 else None

    @staticmethod
    def _auth(context: grpc.ServicerContext) -> tuple:
        """The caller's bearer token, passed on to the shards."""
        return tuple(
            (k, v) for k, v in context.invocation_metadata() if k.lower() == "authorization"
        )

    def _timeout(self, context: grpc.ServicerContext) -> float:
        remaining = context.time_remaining()
        return min(self.config.shard_timeout, remaining or self.config.shard_timeout)

    def _all(self, method: str, request, context, allow_partial: bool = False):
        answers, missing = self.shards.call(
            method,
            dict.fromkeys(range(self.shards.count), request),
            self._timeout(context),
            self._auth(context),
        )
        if missing and not allow_partial:
            raise ShardUnavailable(missing)
        return answers, missing

    def Search(self, request, context):  # noqa: N802
        try:
            start = time.perf_counter()
            if not request.HasField("features"):
                raise InvalidRequest("features are missing: extract them first")
            features = request_features(request.features)
            opts = request.options
            check_search_args(
                self.limits, len(features), request.top_k, opts.shortlist, opts.min_inliers
            )
            min_inliers = self.params.min_inliers_for(features.backend, opts.min_inliers)
            ask = search_pb2.NeighboursRequest(
                features=request.features,
                k=self.params.k,
                exclude_image_ids=opts.exclude_image_ids,
            )
            answers, missing = self._all("Neighbours", ask, context, opts.allow_partial)
            t1 = time.perf_counter()
            images, hits = merge_neighbours(answers, self.params.k)

            candidates, verified, aggregate_ms, verify_ms = rank(
                features,
                hits,
                images,
                self._matcher(request, len(features), images, context, missing),
                self.params,
                shortlist_size=opts.shortlist or self.params.shortlist,
                min_inliers=min_inliers,
                include_matches=opts.include_matches,
                include_rejected=opts.include_rejected,
                alive=context.is_active,
                pool=self._pool,
            )
            timing = Timing(
                (t1 - start) * 1e3, aggregate_ms, verify_ms, (time.perf_counter() - start) * 1e3
            )
            result = SearchResult(candidates[: request.top_k], min_inliers, timing, verified)
            response = search_response(result)
            response.partial = bool(missing)
            response.missing_shards.extend(sorted(missing))
            return response
        except Exception as exc:
            self._fail(context, exc)

    def _matcher(
        self, request, n_queries: int, images: list[ImageMeta], context, missing: dict
    ) -> Matcher:
        """Exact matching on the shards that hold the shortlisted images. Shards that cannot
        answer join ``missing`` with allow_partial, and fail the search without it."""

        def match(chosen: np.ndarray) -> list[Putative]:
            by_shard: dict[int, list[str]] = {}
            for i in chosen:
                image_id = images[i].image_id
                by_shard.setdefault(shard_of(image_id, self.shards.count), []).append(image_id)
            asks = {
                shard: search_pb2.MatchRequest(features=request.features, image_ids=ids)
                for shard, ids in by_shard.items()
            }
            got, lost = self.shards.call("Match", asks, self._timeout(context), self._auth(context))
            if lost and not request.options.allow_partial:
                raise ShardUnavailable(lost)
            missing.update(lost)
            found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for answer in got.values():
                found.update(match_from_proto(answer, n_queries))
            none = (np.zeros(0, np.int64), np.zeros((0, 2), np.float32))
            return [Putative(int(i), *found.get(images[i].image_id, none)) for i in chosen]

        return match

    def _fail(self, context: grpc.ServicerContext, exc: BaseException) -> None:
        if isinstance(exc, ShardUnavailable):
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"{exc}; search with allow_partial for an answer from the others",
            )
        if isinstance(exc, ShardError):
            context.abort(exc.code, str(exc))
        _abort(context, exc)

    def _route(self, ids: list[str]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for n, image_id in enumerate(ids):
            groups.setdefault(shard_of(image_id, self.shards.count), []).append(n)
        return groups

    def AddImages(self, request, context):  # noqa: N802
        try:
            groups = self._route([img.image_id for img in request.images])
            requests = {
                shard: search_pb2.AddImagesRequest(
                    images=[request.images[n] for n in members], on_conflict=request.on_conflict
                )
                for shard, members in groups.items()
            }
            answers, missing = self.shards.call(
                "AddImages", requests, self._timeout(context), self._auth(context)
            )
            if missing:
                raise ShardUnavailable(missing)
            return search_pb2.AddImagesResponse(
                added=sum(a.added for a in answers.values()),
                skipped=sum(a.skipped for a in answers.values()),
                replaced=sum(a.replaced for a in answers.values()),
                index=self._info(context, {i: a.index for i, a in answers.items()}),
            )
        except ShardUnavailable as exc:
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"{exc}; images for the other shards were added: retry with on_conflict SKIP",
            )
        except Exception as exc:
            self._fail(context, exc)

    def RemoveImages(self, request, context):  # noqa: N802
        try:
            ids = list(request.image_ids)
            requests = {
                shard: search_pb2.RemoveImagesRequest(image_ids=[ids[n] for n in members])
                for shard, members in self._route(ids).items()
            }
            answers, missing = self.shards.call(
                "RemoveImages", requests, self._timeout(context), self._auth(context)
            )
            if missing:
                raise ShardUnavailable(missing)
            return search_pb2.RemoveImagesResponse(
                removed=sum(a.removed for a in answers.values()),
                not_found=sorted(i for a in answers.values() for i in a.not_found),
                index=self._info(context, {i: a.index for i, a in answers.items()}),
            )
        except Exception as exc:
            self._fail(context, exc)

    def _info(self, context, known: dict | None = None) -> search_pb2.IndexInfo:
        """The whole index's info; ``known`` holds shards' infos already in hand (a write's
        answers), so only the other shards are asked."""
        known = known or {}
        others = [i for i in range(self.shards.count) if i not in known]
        answers, missing = self.shards.call(
            "GetIndexInfo",
            dict.fromkeys(others, search_pb2.GetIndexInfoRequest()),
            self._timeout(context),
            self._auth(context),
        )
        if missing:
            raise ShardUnavailable(missing)
        infos = [*known.values(), *answers.values()]
        total = search_pb2.IndexInfo(shards=len(infos), shard_index=-1)
        for info in infos:
            total.images += info.images
            total.descriptors += info.descriptors
            total.bytes_on_disk += info.bytes_on_disk
            total.labels += info.labels
            total.generation += info.generation
            total.segments += info.segments
            total.growing_descriptors += info.growing_descriptors
            total.disk_full |= info.disk_full
            if info.backend:
                total.backend, total.dimension = info.backend, info.dimension
        if total.descriptors:
            total.bytes_per_descriptor = total.bytes_on_disk / total.descriptors
        return total

    def GetIndexInfo(self, request, context):  # noqa: N802
        try:
            return self._info(context)
        except Exception as exc:
            self._fail(context, exc)

    def ListImages(self, request, context):  # noqa: N802
        try:
            size = request.page_size or 1000
            answers, _ = self._all(
                "ListImages",
                search_pb2.ListImagesRequest(page_token=request.page_token, page_size=size),
                context,
            )
            merged = sorted(
                (m for a in answers.values() for m in a.images), key=lambda m: m.image_id
            )
            more = len(merged) > size or any(a.next_page_token for a in answers.values())
            page = merged[:size]
            response = search_pb2.ListImagesResponse(
                next_page_token=page[-1].image_id if more and page else ""
            )
            response.images.extend(page)
            return response
        except Exception as exc:
            self._fail(context, exc)

    def Neighbours(self, request, context):  # noqa: N802
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "Neighbours is asked of shards; this is a coordinator: call Search",
        )

    def Match(self, request, context):  # noqa: N802
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "Match is asked of shards; this is a coordinator: call Search",
        )


def merge_neighbours(answers: dict, k: int) -> tuple[list[ImageMeta], Hits]:
    """The global k nearest per query descriptor from every shard's k nearest."""
    images: list[ImageMeta] = []
    parts = []
    for shard in sorted(answers):
        shard_images, hits = neighbours_from_proto(answers[shard])
        parts.append(
            (
                hits.query,
                (np.int64(shard) << ROW_BITS) | hits.row,
                hits.image + len(images),
                hits.dist,
            )
        )
        images.extend(shard_images)
    if not parts:
        empty = np.zeros(0, np.int64)
        hits = Hits(empty.astype(np.int32), empty, empty.astype(np.int32), empty.astype("f4"))
        return images, hits
    query, row, image, dist = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.lexsort((row, dist, query))  # by query, then distance; ties by row
    query, row, image, dist = query[order], row[order], image[order], dist[order]
    first = np.searchsorted(query, query, side="left")
    keep = np.arange(query.size) - first < k  # the k nearest of each query descriptor
    return images, Hits(query[keep], row[keep], image[keep].astype(np.int32), dist[keep])


def create_server(
    config: CoordinatorConfig, shards: Shards | None = None
) -> tuple[runtime.Running, int, CoordinatorServicer]:
    servicer = CoordinatorServicer(config, shards)
    running = serve_search(config, servicer, Metrics(), "coordinator")
    log.info(
        "coordinating %d shards: %s",
        servicer.shards.count,
        ", ".join(config.shards) or config.shards_dns,
    )
    return running, running.port, servicer

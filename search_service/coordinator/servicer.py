"""The coordinator's landmark.v1.Search: searches fan out to the shards and are ranked and
verified here; writes go to the owning shard."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from landmark.connection import RETRY_AFTER_MS
from landmark.v1 import search_pb2, search_pb2_grpc, shard_pb2

from ..errors import InvalidRequest
from ..index.images import ImageMeta
from ..limits import RequestLimits, check_query_size, check_search_args
from ..messages import compare_request, compare_response, search_response
from ..search.exact_matches import Matcher, Putative
from ..search.searching import compare, from_first_stage
from ..search.verify import FailureCount
from ..sharding import match_from_proto, shard_of
from ..status import abort
from ..validation import request_features
from .config import CoordinatorConfig
from .shards import CodebooksDiffer, ShardError, Shards, ShardUnavailable, merge_neighbours

log = logging.getLogger(__name__)


class CoordinatorServicer(search_pb2_grpc.SearchServicer):
    def __init__(self, config: CoordinatorConfig, shards: Shards | None = None) -> None:
        self.config = config
        self.shards = shards or Shards(config)
        self.params = config.search_params()
        self.limits = RequestLimits(config.max_top_k, config.max_query_features)
        self._pool = ThreadPoolExecutor(config.threads, "verify") if config.threads > 1 else None
        self.verify_failures = FailureCount()  # candidates whose verification raised

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
            size = opts.shortlist or self.params.shortlist
            ask = shard_pb2.NeighboursRequest(
                features=request.features,
                k=self.params.k,
                exclude_image_ids=opts.exclude_image_ids,
                shortlist=size,
            )
            answers, missing = self._all("Neighbours", ask, context, opts.allow_partial)
            images, hits, words = merge_neighbours(answers, self.params.k)
            result = from_first_stage(
                features,
                words,
                hits,
                images,
                self._matcher(request, len(features), images, context, missing),
                self.params,
                top_k=request.top_k,
                shortlist_size=size,
                min_inliers=min_inliers,
                neighbours_ms=(time.perf_counter() - start) * 1e3,
                started=start,
                include_matches=opts.include_matches,
                include_rejected=opts.include_rejected,
                alive=context.is_active,
                pool=self._pool,
                failures=self.verify_failures,
            )
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
                shard: shard_pb2.MatchRequest(features=request.features, image_ids=ids)
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

    def Compare(self, request, context):  # noqa: N802
        """Pure computation: answered here, no shard is asked."""
        try:
            query, reference = compare_request(request)
            check_query_size(self.limits, len(query))
            check_query_size(self.limits, len(reference))
            result = compare(query, reference, self.params, request.min_inliers)
        except Exception as exc:
            self._fail(context, exc)
        return compare_response(result)

    def _fail(self, context: grpc.ServicerContext, exc: BaseException) -> None:
        if isinstance(exc, ShardUnavailable):
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"{exc}; search with allow_partial for an answer from the others",
            )
        if isinstance(exc, CodebooksDiffer):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if isinstance(exc, ShardError):
            if exc.retry_after is not None:
                hint = str(int(exc.retry_after * 1000))
                context.set_trailing_metadata(((RETRY_AFTER_MS, hint),))
            context.abort(exc.code, str(exc))
        abort(context, exc)

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
        labels, missing_labels = self.shards.call(
            "Labels",
            dict.fromkeys(range(self.shards.count), shard_pb2.LabelsRequest()),
            self._timeout(context),
            self._auth(context),
        )
        if missing or missing_labels:
            raise ShardUnavailable({**missing, **missing_labels})
        infos = [*known.values(), *answers.values()]
        total = search_pb2.IndexInfo(shards=len(infos), shard_index=-1, settled=True)
        for info in infos:
            total.images += info.images
            total.descriptors += info.descriptors
            total.bytes_on_disk += info.bytes_on_disk
            total.bytes_in_memory += info.bytes_in_memory
            total.generation += info.generation
            total.segments += info.segments
            total.growing_descriptors += info.growing_descriptors
            total.disk_full |= info.disk_full
            total.settled &= info.settled
            if info.backend:
                total.backend, total.dimension = info.backend, info.dimension
        total.labels = len({label for answer in labels.values() for label in answer.labels})
        versions = sorted({info.codebook_version for info in infos} - {""})
        total.codebook_version = ",".join(versions)
        if total.descriptors:
            total.bytes_per_descriptor = total.bytes_on_disk / total.descriptors
            total.memory_bytes_per_descriptor = total.bytes_in_memory / total.descriptors
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

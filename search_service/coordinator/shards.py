"""The shards a coordinator calls: where they are, parallel calls, and the global first
stage from every shard's: the k nearest of every shard's k nearest, and all the images
shards chose by their words."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np

from landmark.connection import Connection, retry_hint
from landmark.v1 import search_pb2, search_pb2_grpc, shard_pb2_grpc

from ..index.images import ImageMeta
from ..search.hits import Hits, WordChoice
from ..sharding import neighbours_from_proto, resolve
from .config import CoordinatorConfig

log = logging.getLogger(__name__)

ROW_BITS = 40  # global row = shard << 40 | row within the shard
DISCOVERY_SECONDS = 5.0  # how often DNS is asked again for the shards
SHARD_METHODS = (
    "Neighbours",
    "Match",
    "Labels",
)  # on landmark.v1.Shard; the rest on landmark.v1.Search


class ShardUnavailable(Exception):
    def __init__(self, missing: dict[str, str]) -> None:
        self.missing = missing
        names = ", ".join(f"{name} ({why})" for name, why in missing.items())
        super().__init__(f"shard(s) not answering: {names}")


class CodebooksDiffer(Exception):
    """Shards answered word scores from different codebooks: they do not compare."""

    def __init__(self, versions: dict[int, str]) -> None:
        which = ", ".join(f"shard {n}: {v}" for n, v in sorted(versions.items()))
        super().__init__(
            f"the shards hold different codebooks ({which}), so their word scores do not "
            "compare: start every shard with the same --codebook folder"
        )


class ShardError(Exception):
    """A shard refused a request: its status is passed on."""

    def __init__(self, shard: str, error: grpc.RpcError) -> None:
        self.code = error.code()
        self.retry_after = retry_hint(error)  # a full buffer's hint, passed on too
        super().__init__(f"{shard}: {error.details()}")


class Shards:
    """The shard addresses in shard order (each one or more replicas), their stubs, and
    parallel calls to them: each shard's to one of its replicas, the next one taken when
    it answers UNAVAILABLE, within the call's deadline."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        self.count = config.shard_count if config.shards_dns else len(config.shards)
        self._stubs: dict[str, tuple[search_pb2_grpc.SearchStub, shard_pb2_grpc.ShardStub]] = {}
        self._channels: list[grpc.Channel] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(4, 2 * self.count), "shard")
        self._found: dict[int, list[str]] = {}
        self._turn = itertools.count()  # which replica a call tries first, in turn
        self._connection = Connection.from_env()
        token = config.shard_token
        self._own = (("authorization", f"Bearer {token}"),) if token else ()
        self._stop = threading.Event()
        if config.shards_dns:
            # found once before serving, then refreshed in the background: never on a call
            self._discover()
            threading.Thread(target=self._rediscover, name="discovery", daemon=True).start()

    def name(self, i: int) -> str:
        return f"shard {i} ({'|'.join(self.replicas(i)) or 'not found'})"

    def _stub(self, address: str, method: str = "") -> Any:
        """The stub serving ``method`` at ``address``: landmark.v1.Shard for the two halves
        of a search, landmark.v1.Search for the rest."""
        with self._lock:
            if address not in self._stubs:
                # TLS to the shards as for any client: LANDMARK_TLS_CA, LANDMARK_TLS_CLIENT_*
                channel = self._connection.channel(address)
                self._channels.append(channel)
                self._stubs[address] = (
                    search_pb2_grpc.SearchStub(channel),
                    shard_pb2_grpc.ShardStub(channel),
                )
            search, shard = self._stubs[address]
            return shard if method in SHARD_METHODS else search

    def address(self, i: int) -> str | None:
        """Shard ``i``'s first replica (None when DNS found none)."""
        replicas = self.replicas(i)
        return replicas[0] if replicas else None

    def replicas(self, i: int) -> list[str]:
        """Shard ``i``'s replicas: ``A1|A2`` in --shards, or every address DNS gave that
        reports shard ``i``."""
        if not self.config.shards_dns:
            return self.config.shards[i].split("|")
        return self._found.get(i, [])

    def _rediscover(self) -> None:
        while not self._stop.wait(DISCOVERY_SECONDS):
            self._discover()

    def _discover(self) -> None:
        """Ask every address behind the DNS name which shard it is."""
        found: dict[int, list[str]] = {}
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
                found.setdefault(info.shard_index, []).append(address)
        self._found = found

    def call(
        self, method: str, requests: dict[int, object], timeout: float, metadata=None
    ) -> tuple[dict, dict]:
        """Call ``method`` on the given shards at once: ({shard: response}, {name: why})."""
        futures = {}
        missing: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        for i, request in requests.items():
            replicas = self.replicas(i)
            if not replicas:
                missing[self.name(i)] = "not found by DNS"
                continue
            futures[i] = self._pool.submit(
                self._one, replicas, method, request, deadline, metadata or self._own
            )
        answers = {}
        for i, future in futures.items():
            try:
                answers[i] = future.result()
            except TimeoutError:  # the deadline passed before a replica could be asked
                missing[self.name(i)] = grpc.StatusCode.DEADLINE_EXCEEDED.name
            except grpc.RpcError as err:
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    missing[self.name(i)] = err.code().name
                else:
                    raise ShardError(self.name(i), err) from None
        return answers, missing

    def _one(
        self, replicas: list[str], method: str, request: object, deadline: float, metadata: Any
    ) -> object:
        """``method`` on one replica, starting at the next in turn; the next one when a
        replica answers UNAVAILABLE, while the deadline allows."""
        first = next(self._turn) % len(replicas)
        error: grpc.RpcError | None = None
        for address in replicas[first:] + replicas[:first]:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            stub = self._stub(address, method)
            try:
                return getattr(stub, method)(request, timeout=left, metadata=metadata)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                error = err
        if error is None:
            raise TimeoutError
        raise error

    def close(self) -> None:
        self._stop.set()
        for channel in self._channels:
            channel.close()
        self._pool.shutdown(wait=False)


def merge_neighbours(answers: dict, k: int) -> tuple[list[ImageMeta], Hits, WordChoice]:
    """The global k nearest per query descriptor from every shard's k nearest, and every
    shard's images chosen by words (their scores compare across shards that share one
    codebook: CodebooksDiffer when two shards' differ)."""
    images: list[ImageMeta] = []
    parts, words, versions = [], [], {}
    for shard in sorted(answers):
        shard_images, hits, chosen = neighbours_from_proto(answers[shard])
        if chosen.codebook:
            versions[shard] = chosen.codebook
        parts.append(
            (
                hits.query,
                (np.int64(shard) << ROW_BITS) | hits.row,
                hits.image + len(images),
                hits.dist,
            )
        )
        words.append(WordChoice(chosen.image + len(images), chosen.score, chosen.shared))
        images.extend(shard_images)
    if len(set(versions.values())) > 1:
        raise CodebooksDiffer(versions)
    chosen = WordChoice(
        np.concatenate([np.zeros(0, np.int64), *(w.image for w in words)]),
        np.concatenate([np.zeros(0, np.float64), *(w.score for w in words)]),
        np.concatenate([np.zeros(0, np.int64), *(w.shared for w in words)]),
        next(iter(versions.values()), ""),
    )
    if not parts:
        return images, Hits.empty(), chosen
    query, row, image, dist = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.lexsort((row, dist, query))  # by query, then distance; ties by row
    query, row, image, dist = query[order], row[order], image[order], dist[order]
    first = np.searchsorted(query, query, side="left")
    keep = np.arange(query.size) - first < k  # the k nearest of each query descriptor
    return images, Hits(query[keep], row[keep], image[keep].astype(np.int32), dist[keep]), chosen

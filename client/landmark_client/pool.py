"""The extractor replicas an ingest run spreads its photos over, each with its window."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from landmark.backoff import Backoff
from landmark.connection import Connection, endpoints
from landmark.v1 import extractor_pb2, extractor_pb2_grpc

log = logging.getLogger(__name__)

PAUSE = (0.5, 30.0)  # rest of a failed replica: first, longest (doubling)


class Replica:
    """One extractor process: its stub, its window of calls in flight, its health."""

    def __init__(self, address: str, stub: Any, window: int) -> None:
        self.address = address
        self.stub = stub
        self.window = window
        self.in_flight = 0
        self.down_until = 0.0
        self.rests = Backoff(*PAUSE)
        self.described = 0  # photos it described in this run

    def free(self, now: float) -> bool:
        """Room for one more call: within its window, or one call at a time while on
        probation (back from a rest, until a call succeeds)."""
        room = 1 if self.on_probation else self.window
        return self.in_flight < room and now >= self.down_until

    @property
    def on_probation(self) -> bool:
        return self.rests.failing

    def failed(self) -> None:
        """Rest it, longer after each failure in a row."""
        self.down_until = time.monotonic() + self.rests.failed()

    def succeeded(self) -> None:
        self.rests.succeeded()
        self.described += 1


def connect(address: str, connection: Connection) -> tuple[list[Replica], list[grpc.Channel]]:
    """A Replica for every extractor behind ``address`` (a list, or names resolving to
    several), its window twice the extractions it runs at once (GetExtractorInfo), so
    that the next photo is there when one ends. One that does not answer starts rested."""
    replicas, channels = [], []
    for target, authority in endpoints(address):
        channel = connection.channel(target, authority)
        stub = extractor_pb2_grpc.ExtractorStub(channel)
        replica = Replica(target, stub, 2)
        try:
            info = stub.GetExtractorInfo(
                extractor_pb2.GetExtractorInfoRequest(), timeout=10, metadata=connection.metadata
            )
            replica.window = 2 * max(1, info.max_concurrent)
        except grpc.RpcError as err:
            log.warning("extractor %s: %s; tried again later", target, err.code().name)
            replica.failed()
        replicas.append(replica)
        channels.append(channel)
    return replicas, channels

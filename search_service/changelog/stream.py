"""The changelog's stream on NATS JetStream: created once (replicated on ``replicas``
servers, the latest message per subject kept), written in atomic batches acknowledged by
a quorum, read per subject and followed in order.

nats-py is asyncio; the search service's gRPC handlers are threads. The client runs its
own event loop in a thread of its own, and each method here is a blocking call into it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import nats
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from ..errors import Unavailable
from .batches import (
    BATCH_LIMIT,
    DUPLICATE_IN_BATCH,
    WRONG_LAST_SEQUENCE,
    Pending,
    latest,
    send,
)
from .subjects import STREAM, every_shard

log = logging.getLogger(__name__)

T = TypeVar("T")
ELECTION_SECONDS = 10.0  # how long a call is made again while the stream has no leader
HEARTBEAT_SECONDS = 1.0  # a follow whose server has gone is made anew after two missed
DEDUPLICATION_SECONDS = 120.0  # how long the stream remembers a message's id
UNANSWERED = (NatsTimeout, asyncio.TimeoutError)  # the write may have landed, or not
UNREACHABLE = UNANSWERED + (
    NoRespondersError,
    NoServersError,
    NoStreamResponseError,
    ConnectionClosedError,
)


class Conflict(Exception):
    """An image's subject changed between reading it and a write that expected it not to
    (another writer came first); nothing of the batch was written."""


class Changelog:
    def __init__(self, servers: list[str], replicas: int = 3, timeout: float = 5.0) -> None:
        """``servers``: nats://HOST:PORT of one or more NATS servers of the cluster."""
        self.servers = servers
        self.replicas = replicas
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="changelog", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._connect(), timeout + 30)
        except BaseException:
            self.close()
            raise

    # -- blocking calls -----------------------------------------------------------------

    def publish(self, messages: list[tuple[str, bytes, int | None]]) -> int:
        """Write ``messages`` (subject, payload, the sequence its subject's latest message
        must have, 0 for none, or None for any) all or nothing, once a quorum of servers
        holds them; returns the stream sequence of the last. Conflict when an expected
        sequence differs, Unavailable when no quorum answers in time.

        Each message carries an id of its own (Nats-Msg-Id), and an attempt nobody
        answered is made again with the same ids: the stream stores what an unanswered
        attempt left in it once, and answers the next as a duplicate."""
        if not 0 < len(messages) <= BATCH_LIMIT:
            raise ValueError(f"a change holds 1 to {BATCH_LIMIT} messages, not {len(messages)}")
        return self._run(self._publish(messages))

    def latest(self, subjects: list[str]) -> dict[str, tuple[int, bytes]]:
        """Per subject that has a message: its latest's sequence and payload."""
        return self._run(self._latest(subjects))

    def follow(
        self, subject: str, after: int, deliver: Callable[[int, str, bytes, int], None]
    ) -> int:
        """Deliver ``subject``'s messages after sequence ``after``, in order, as
        ``deliver(sequence, subject, payload, pending)`` (pending: messages still to come), on the
        client's thread, from now on and across reconnections; returns the sequence of
        the last message ``subject`` (a wildcard) held when it began, 0 for none."""
        return self._run(self._follow(subject, after, deliver))

    def purge(self, subject: str) -> None:
        """Delete every message of ``subject`` (a wildcard) from the stream."""
        self._run(self._js.purge_stream(STREAM, subject=subject))

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._run(self._close(), 5)
            except Exception:  # noqa: BLE001 (closing: nothing left to report to)
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout or 2 * self.timeout + ELECTION_SECONDS + 5)
        except TimeoutError:
            future.cancel()
            raise Unavailable(f"the changelog ({self._where()}) did not answer in time") from None

    def _where(self) -> str:
        return ", ".join(self.servers)

    # -- on the client's loop -----------------------------------------------------------

    async def _connect(self) -> None:
        self._nc = await nats.connect(
            servers=self.servers,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            error_cb=self._error,
        )
        self._js = self._nc.jetstream(timeout=self.timeout)
        config = StreamConfig(
            name=STREAM,
            subjects=[every_shard()],
            num_replicas=self.replicas,
            max_msgs_per_subject=1,  # the latest change of each image
            storage=StorageType.FILE,
            allow_atomic=True,
            allow_direct=True,
            duplicate_window=DEDUPLICATION_SECONDS,
        )
        deadline = self._loop.time() + 30  # a cluster that has just started elects a leader
        while True:
            try:
                await self._js.stream_info(STREAM)
                return
            except NotFoundError:
                pass
            except UNREACHABLE + (APIError,) as exc:
                if self._loop.time() > deadline:
                    raise Unavailable(f"no JetStream at {self._where()}: {exc}") from None
                await asyncio.sleep(0.5)
                continue
            try:
                await self._js.add_stream(config)
                log.info("created the stream %s (%d replicas)", STREAM, self.replicas)
                return
            except UNREACHABLE + (APIError,) as exc:
                if self._loop.time() > deadline:
                    raise Unavailable(f"cannot create {STREAM} at {self._where()}: {exc}") from None
                await asyncio.sleep(0.5)

    async def _close(self) -> None:
        nc = getattr(self, "_nc", None)
        if nc is not None and not nc.is_closed:
            await nc.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _error(self, exc: Exception) -> None:
        log.debug("changelog connection: %r", exc)

    async def _answered(
        self, attempt: Callable[[], Awaitable[T]], again: tuple[type[BaseException], ...]
    ) -> T:
        """``attempt()``, made again for up to ELECTION_SECONDS while it fails with
        ``again`` (no responders: the stream is electing a leader after a server was lost,
        and nothing was written)."""
        deadline = self._loop.time() + ELECTION_SECONDS
        tries = 0
        while True:
            try:
                return await attempt()
            except again as exc:
                if self._loop.time() > deadline:
                    raise
                if not tries:
                    log.info("the changelog did not answer (%r): trying again", exc)
                tries += 1
                await asyncio.sleep(0.25)

    async def _publish(self, messages: list[tuple[str, bytes, int | None]]) -> int:
        ids = [f"{uuid.uuid4().hex}.{n}" for n in range(len(messages))]
        try:  # made again after no answer too: the ids make a second copy a duplicate
            ack = await self._answered(
                lambda: send(self._nc, messages, ids, self.timeout),
                (NoRespondersError, Pending, *UNANSWERED),
            )
            if ack.get("error", {}).get("err_code") == DUPLICATE_IN_BATCH:
                return await self._landed(messages[-1][0])
        except (*UNREACHABLE, Pending) as exc:
            raise Unavailable(
                f"no quorum of the changelog's servers ({self._where()}) acknowledged the "
                f"write in time ({exc!r}): it may still be applied once they return; send it "
                "again with on_conflict skip or replace"
            ) from None
        error = ack.get("error")
        if error:
            if error.get("err_code") == WRONG_LAST_SEQUENCE:
                raise Conflict(error.get("description", "wrong last sequence"))
            raise Unavailable(f"the changelog refused the write: {error.get('description')}")
        return int(ack["seq"])  # a duplicate's is the sequence it was stored at

    async def _landed(self, subject: str) -> int:
        """The sequence of a batch an unanswered attempt stored, from its last message's
        subject: that message's, or a later one's if a later write replaced it."""
        found = await self._answered(
            lambda: latest(self._nc, [subject], self.timeout), (NoRespondersError,)
        )
        return found[subject][0]

    async def _latest(self, subjects: list[str]) -> dict[str, tuple[int, bytes]]:
        try:
            return await self._answered(
                lambda: latest(self._nc, subjects, self.timeout), (NoRespondersError,)
            )
        except UNREACHABLE as exc:
            raise Unavailable(
                f"the changelog ({self._where()}) cannot be read now ({exc!r}): nothing was "
                "written; send the change again once a quorum of its servers is back"
            ) from None

    async def _follow(
        self, subject: str, after: int, deliver: Callable[[int, str, bytes, int], None]
    ) -> int:
        async def on_message(msg: Any) -> None:
            meta = msg.metadata
            deliver(int(meta.sequence.stream), msg.subject, bytes(msg.data), int(meta.num_pending))

        kwargs: dict[str, Any] = {
            "ordered_consumer": True,
            "idle_heartbeat": HEARTBEAT_SECONDS,
            "cb": on_message,
        }
        if after > 0:
            kwargs["config"] = nats.js.api.ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1
            )
        try:
            last = int((await self._js.get_last_msg(STREAM, subject)).seq)
        except NotFoundError:
            last = 0
        await self._js.subscribe(subject, **kwargs)
        return last

"""The JetStream batches the changelog makes by hand (nats-py has no call for them): an
atomic batch published with an id per message, and the latest message of many subjects
read in one batched direct get."""

from __future__ import annotations

import json
import uuid
from typing import Any

from nats.aio.client import Client
from nats.errors import NoRespondersError

from ..errors import Unavailable
from .subjects import STREAM

WRONG_LAST_SEQUENCE = 10071  # JetStream's error code when an expected sequence differs
DUPLICATE_IN_BATCH = 10201  # ... when a batch holds a message id the stream already has
STILL_PENDING = 10158  # ... when a message id's first copy waits for a quorum still
BATCH_LIMIT = 1000  # messages JetStream takes in one atomic batch (and we read at once)
DIRECT_GET = f"$JS.API.DIRECT.GET.{STREAM}"


class Pending(Exception):
    """The stream holds an earlier attempt at this write, waiting for a quorum."""


async def send(
    nc: Client, messages: list[tuple[str, bytes, int | None]], ids: list[str], timeout: float
) -> dict[str, Any]:
    """One attempt at ``messages`` (subject, payload, expected last subject sequence or
    None), an atomic batch of its own when more than one, each with its id in ``ids``:
    the stream's answer to the last; Pending while an earlier one waits for a quorum."""
    batch = uuid.uuid4().hex
    for n, (subject, payload, expected) in enumerate(messages, 1):
        headers = {"Nats-Msg-Id": ids[n - 1]}
        if expected is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
        if len(messages) > 1:
            headers |= {"Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(n)}
        if n < len(messages):
            await nc.publish(subject, payload, headers=headers)
            continue
        if len(messages) > 1:
            headers["Nats-Batch-Commit"] = "1"
        reply = await nc.request(subject, payload, timeout=timeout, headers=headers)
        ack = json.loads(reply.data)
        if ack.get("error", {}).get("err_code") == STILL_PENDING:
            raise Pending("an earlier attempt at this write waits for a quorum")
        return ack
    raise ValueError("a change holds one message or more")


async def latest(nc: Client, subjects: list[str], timeout: float) -> dict[str, tuple[int, bytes]]:
    """Per subject that has a message: its latest's sequence and payload, BATCH_LIMIT
    subjects per request."""
    out: dict[str, tuple[int, bytes]] = {}
    todo = list(dict.fromkeys(subjects))
    while todo:
        part, todo = todo[:BATCH_LIMIT], todo[BATCH_LIMIT:]
        found, whole = await _last_of(nc, part, timeout)
        out |= found
        if not whole:  # the answer was cut short: the rest again
            todo = [s for s in part if s not in found] + todo
    return out


async def _last_of(
    nc: Client, subjects: list[str], timeout: float
) -> tuple[dict[str, tuple[int, bytes]], bool]:
    """The latest message of each of ``subjects`` that has one, in one request
    (JetStream's batched direct get, answered by any server holding the stream); and
    whether the answer is whole (False when the server cut it short)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        request = {"multi_last": subjects, "batch": len(subjects)}
        await nc.publish(DIRECT_GET, json.dumps(request).encode(), reply=inbox)
        found: dict[str, tuple[int, bytes]] = {}
        while True:
            msg = await sub.next_msg(timeout=timeout)
            headers = msg.headers or {}
            status = headers.get("Status")
            pending = headers.get("Nats-Num-Pending", "0")
            if status is None:
                found[headers["Nats-Subject"]] = (int(headers["Nats-Sequence"]), msg.data)
            elif status == "204":  # the end of the batch
                if not found and pending != "0":
                    raise Unavailable("the changelog answered a read with nothing")
                return found, pending == "0"
            elif status == "404":  # none of them has a message
                return found, True
            elif status == "503":
                raise NoRespondersError
            else:
                raise Unavailable(f"the changelog refused a read: {status} {msg.data!r}")
    finally:
        await sub.unsubscribe()

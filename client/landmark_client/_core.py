"""What the sync and asyncio clients share (default addresses, replicas, stubs, deadlines,
retries), the base of the sync clients, and ``drive``: an operation (_ops.py) run blocking."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from landmark.connection import Connection, Rotation, replicas

from . import _ops as ops
from .errors import LandmarkError

T = TypeVar("T")

DEFAULT_EXTRACTOR = "127.0.0.1:50051"
DEFAULT_SEARCH = "127.0.0.1:50052"
DEFAULT_TIMEOUT = 30.0


def extractor_address(address: str | None = None) -> str:
    return address or os.environ.get("LANDMARK_EXTRACTOR") or DEFAULT_EXTRACTOR


def search_address(address: str | None = None) -> str:
    return address or os.environ.get("LANDMARK_SEARCH") or DEFAULT_SEARCH


class _ClientCore:
    """What the sync and asyncio clients share: replicas, stubs, deadlines, retries."""

    _kind = ""  # ops.EXTRACTOR or ops.SEARCH: the calls of an operation this client takes
    _service = ""  # its name in messages
    _health_name = ""
    _stub_class: Any = None
    _default_address: Any = None
    _aio = False
    _call: Any  # one call with retries: blocking (_Client) or a coroutine (_AsyncClient)

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
            raise LandmarkError.from_rpc(err, self._service, self.address) from None
        return wait

    def _call_for(self, call: ops.Call) -> Any:
        """``call`` on this client (a coroutine for the asyncio clients)."""
        stubs = self._health if call.health else self._stubs
        return self._call(call.method, call.request, call.timeout, retry=call.retry, stubs=stubs)

    def _ready(self, timeout: float) -> ops.Op[None]:
        where = f"{self._service} at {self.address}"
        return ops.wait_ready(self._kind, self._health_name, where, timeout)


def drive(op: ops.Op[T], clients: Mapping[str, _Client]) -> T:
    """Run ``op`` blocking: each of its calls on the client of its service."""
    step = ops.resume(op)
    while not isinstance(step, ops.Done):
        if isinstance(step, ops.Pause):
            time.sleep(step.seconds)
            step = ops.resume(op)
            continue
        try:
            response = clients[step.service]._call_for(step)
        except LandmarkError as err:
            step = ops.resume(op, error=err)
        else:
            step = ops.resume(op, response)
    return step.value


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

    def _run(self, op: ops.Op[T]) -> T:
        return drive(op, {self._kind: self})

    def health(self, timeout: float | None = None) -> str:
        """The standard gRPC health status of the service, e.g. "SERVING"."""
        return self._run(ops.health(self._kind, self._health_name, timeout))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the service reports SERVING; LandmarkError after ``timeout`` seconds."""
        self._run(self._ready(timeout))

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

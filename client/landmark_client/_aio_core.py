"""The asyncio clients' shared part: calls with retries on the next replica, ``drive``
(an operation of _ops.py, awaited), health, readiness and closing."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any, TypeVar

import grpc

from . import _ops as ops
from ._core import _ClientCore
from .errors import LandmarkError

T = TypeVar("T")


class _AsyncClient(_ClientCore):
    _aio = True

    async def _call(
        self,
        method: str,
        request: Any,
        timeout: float | None,
        *,
        retry: bool = True,
        stubs: list[Any] | None = None,
    ) -> Any:
        deadline = self._deadline(timeout)
        for attempt in itertools.count():
            call, kwargs = self._attempt(method, stubs, deadline)
            try:
                return await call(request, **kwargs)
            except grpc.RpcError as err:
                wait = self._backoff(err, attempt, deadline, retry)
            await asyncio.sleep(wait)

    async def _run(self, op: ops.Op[T]) -> T:
        return await drive(op, {self._kind: self})

    async def health(self, timeout: float | None = None) -> str:
        """The standard gRPC health status of the service, e.g. "SERVING"."""
        return await self._run(ops.health(self._kind, self._health_name, timeout))

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the service reports SERVING; LandmarkError after ``timeout`` seconds."""
        await self._run(self._ready(timeout))

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self):  # noqa: ANN204
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def drive(op: ops.Op[T], clients: Mapping[str, _AsyncClient]) -> T:
    """Run ``op`` awaiting: each of its calls on the client of its service."""
    step = ops.resume(op)
    while not isinstance(step, ops.Done):
        if isinstance(step, ops.Pause):
            await asyncio.sleep(step.seconds)
            step = ops.resume(op)
            continue
        try:
            response = await clients[step.service]._call_for(step)
        except LandmarkError as err:
            step = ops.resume(op, error=err)
        else:
            step = ops.resume(op, response)
    return step.value

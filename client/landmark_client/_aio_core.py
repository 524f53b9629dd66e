"""The asyncio clients' shared part: calls with retries on the next replica, health,
readiness and closing (the twin of _core._Client)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from ._core import _ClientCore
from .errors import LandmarkError


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

    async def health(self, timeout: float | None = None) -> str:
        """The standard gRPC health status of the service, e.g. "SERVING"."""
        request = health_pb2.HealthCheckRequest(service=self._health_name)
        response = await self._call("Check", request, timeout, retry=False, stubs=self._health)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the service reports SERVING; LandmarkError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = await self.health(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                if last == "SERVING":
                    return
            except LandmarkError as err:
                last = err.code.name
            await asyncio.sleep(0.1)
        raise LandmarkError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"{self._service} at {self.address} not ready after {timeout}s (last status: {last})",
        )

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self):  # noqa: ANN204
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

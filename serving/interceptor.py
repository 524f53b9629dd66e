"""One server interceptor: auth, the in-flight limit, metrics and a log line per call.

Methods without a role (health checks, reflection) pass straight through: load balancers
probe health without tokens, and probes must not be refused when the server is busy. Until
the server is ready (``starting`` is None) every other call is refused with UNAVAILABLE.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from .metrics import Metrics
from .security import TokenAuth

log = logging.getLogger("landmark.rpc")


def gone_code(context: grpc.ServicerContext) -> grpc.StatusCode:
    """Why a call's work stopped early: its deadline passed, or its caller went away."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def final_code(context: grpc.ServicerContext, raised: bool) -> grpc.StatusCode:
    """The status a finished call ended with, as seen from the servicer's side."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if not context.is_active():  # the client went away or its deadline passed
        return gone_code(context)
    return grpc.StatusCode.UNKNOWN if raised else grpc.StatusCode.OK


class ServingInterceptor(grpc.ServerInterceptor):
    def __init__(
        self, roles: dict[str, str], auth: TokenAuth, metrics: Metrics, max_rpcs: int
    ) -> None:
        self.roles = roles
        self.auth = auth
        self.metrics = metrics
        self.max_rpcs = max_rpcs
        # why calls are refused before the server is ready (None once it is)
        self.starting: str | None = "the server is starting"
        self._lock = threading.Lock()
        self._in_flight = 0

    def intercept_service(self, continuation, handler_call_details):
        """Runs on gRPC's polling thread with the call's metadata only: auth and the
        in-flight limit are decided here, before any worker waits for a request body."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        role = self.roles.get(method)
        if handler is None or role is None:
            return handler
        denial = self.auth.check(handler_call_details.invocation_metadata, role)
        starting = self.starting
        if denial is None and starting is not None:
            denial = (
                grpc.StatusCode.UNAVAILABLE,
                f"{starting}; retry shortly (the health service reports SERVING when it is ready)",
            )
        if denial is None and not self._admit(method):
            denial = (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {self.max_rpcs} calls in progress; "
                "retry with backoff",
            )
        if denial is not None:
            return self._refusal(method, denial)
        return _wrap(handler, method, self)

    def _refusal(self, method: str, denial: tuple[grpc.StatusCode, str]):
        """A handler that refuses the call from its metadata alone. It takes the request
        as a stream it never reads, so a refused caller cannot hold a worker thread by never
        finishing its request body, nor make the server buffer a large one: the call ends
        as soon as a worker picks it up."""

        def refuse(requests: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                context.abort(*denial)
            finally:
                self.record(method, context, start, raised=True, admitted=False)

        return grpc.stream_unary_rpc_method_handler(refuse)

    # -- admission and accounting -------------------------------------------------------

    def _admit(self, method: str) -> bool:
        """Take one of the max_rpcs places, or say there is none."""
        with self._lock:
            if self._in_flight >= self.max_rpcs:
                return False
            self._in_flight += 1
        self.metrics.in_flight.labels(method).inc()
        return True

    def release(self, method: str) -> None:
        with self._lock:
            self._in_flight -= 1
        self.metrics.in_flight.labels(method).dec()

    def record(self, method: str, context, start: float, raised: bool, admitted: bool) -> None:
        if admitted:
            self.release(method)
        code = final_code(context, raised).name
        seconds = time.perf_counter() - start
        self.metrics.requests.labels(method, code).inc()
        self.metrics.latency.labels(method, code).observe(seconds)
        peer = context.peer()
        log.info(
            "rpc method=%s code=%s duration_ms=%.1f peer=%s",
            method,
            code,
            seconds * 1e3,
            peer,
            extra={
                "method": method,
                "code": code,
                "duration_ms": round(seconds * 1e3, 2),
                "peer": peer,
            },
        )


@contextlib.contextmanager
def _served(icp: ServingInterceptor, method: str, context: grpc.ServicerContext) -> Iterator[None]:
    """Around one admitted call: INTERNAL for an exception the servicer did not turn into
    a status (not gRPC's UNKNOWN with the exception's text), then its place given back and
    the metrics and log line written, however it ended."""
    start, raised = time.perf_counter(), True
    try:
        try:
            yield
        except Exception:
            # context.abort (the status is already set), or a caller gone while its request
            # was being read: nothing to report as an error
            if context.code() is not None or not context.is_active():
                raise
            log.exception("unhandled error in %s", method)
            context.abort(grpc.StatusCode.INTERNAL, "internal error in the service; see its log")
        raised = False
    finally:
        icp.record(method, context, start, raised, admitted=True)


def _one(requests: Iterator, context: grpc.ServicerContext) -> Any:
    """The single request of a unary method, read from the request stream."""
    request = next(requests, None)
    if request is None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call carried no request message")
    return request


def _wrap(handler: grpc.RpcMethodHandler, method: str, icp: ServingInterceptor):
    """The handler of an admitted call. Every kind is served as request-streaming, so the
    behaviour always runs and gives its place back (a unary handler whose caller leaves
    before sending the body never would), and the body is read inside that accounting."""

    def unary_response(behaviour: Callable, unary_request: bool) -> Callable:
        def run(requests: Iterator, context: grpc.ServicerContext) -> Any:
            with _served(icp, method, context):
                request = _one(requests, context) if unary_request else requests
                return behaviour(request, context)

        return run

    def stream_response(behaviour: Callable, unary_request: bool) -> Callable:
        def run(requests: Iterator, context: grpc.ServicerContext) -> Iterator:
            with _served(icp, method, context):
                request = _one(requests, context) if unary_request else requests
                yield from behaviour(request, context)

        return run

    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.stream_unary_rpc_method_handler(unary_response(handler.unary_unary, True), **kw)
    if handler.unary_stream:
        return grpc.stream_stream_rpc_method_handler(
            stream_response(handler.unary_stream, True), **kw
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            unary_response(handler.stream_unary, False), **kw
        )
    return grpc.stream_stream_rpc_method_handler(
        stream_response(handler.stream_stream, False), **kw
    )

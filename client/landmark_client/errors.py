"""The one exception type of the SDK."""

from __future__ import annotations

import grpc

from landmark.connection import retry_hint


class LandmarkError(Exception):
    """A call to a landmark service failed.

    ``code`` is the gRPC status code (e.g. ``grpc.StatusCode.INVALID_ARGUMENT``) and
    ``details`` the server's message, written to say what to fix.
    """

    def __init__(
        self, code: grpc.StatusCode, details: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        # seconds the service asked to wait before sending the same request again (a
        # refusal that passes with time, e.g. the search node's buffer at its bound)
        self.retry_after = retry_after

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, service: str = "", address: str = "") -> LandmarkError:
        """The error of a failed call to ``service`` (e.g. "search service") at ``address``,
        its message saying what to check where the status alone would not."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = (error.details() if hasattr(error, "details") else None) or str(error)
        if code is grpc.StatusCode.UNIMPLEMENTED and service:
            return cls(
                code,
                f"the server at {address} is not the {service} ({details}): check the address "
                "(the extractor and the search service listen on different ports)",
            )
        service = f"{service} at {address}" if service and address else service
        hint = retry_hint(error)
        if code is grpc.StatusCode.UNAVAILABLE and service and hint is not None:
            # the service itself answered: it runs, and says why and when to retry
            details = f"{service}: {details}"
        elif code is grpc.StatusCode.UNAVAILABLE and service:
            details = f"{service} is unavailable ({details}); is it running at that address?"
        elif code is grpc.StatusCode.DEADLINE_EXCEEDED and service:
            details = f"{service} did not answer within the timeout ({details})"
        return cls(code, details, hint)

    @classmethod
    def from_code_number(cls, number: int, details: str) -> LandmarkError:
        for code in grpc.StatusCode:
            if code.value[0] == number:
                return cls(code, details)
        return cls(grpc.StatusCode.UNKNOWN, details)

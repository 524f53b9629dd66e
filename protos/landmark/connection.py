"""How a client (the SDK, or the coordinator calling its shards) reaches a service: channels,
TLS, bearer token, replicas and retries.

An address is one ``host:port`` (a DNS name that resolves to several replicas is spread
over with gRPC's round_robin policy) or a comma-separated list of replicas, which the SDK
takes in turn. Read calls that fail with UNAVAILABLE are retried on the next replica with
exponential backoff, within the call's deadline.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from .backoff import doubling, jittered

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.max_send_message_length", 256 << 20),
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
    ("grpc.enable_retries", 0),  # the SDK retries itself, within the caller's deadline
]


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


@dataclass(frozen=True)
class Connection:
    """Security and retry settings of a client (default: ``Connection.from_env()``).

    ``tls`` uses the system's root certificates unless ``ca`` (PEM bytes) is given;
    ``cert`` and ``key`` (PEM) are the client's for mutual TLS; ``token`` is sent as
    ``authorization: Bearer <token>``; ``retries`` bounds the retries of read calls."""

    token: str | None = None
    tls: bool = False
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None  # TLS name to expect, when it differs from the address
    retries: int = 3
    backoff: float = 0.05  # first retry delay in seconds; doubles each time

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Connection:
        """LANDMARK_TOKEN, LANDMARK_TLS (1/0), LANDMARK_TLS_CA, LANDMARK_TLS_CLIENT_CERT,
        LANDMARK_TLS_CLIENT_KEY (file paths) and LANDMARK_TLS_SERVER_NAME."""
        if env is None:
            env = os.environ
        ca = _read(env.get("LANDMARK_TLS_CA"))
        cert = _read(env.get("LANDMARK_TLS_CLIENT_CERT"))
        tls = env.get("LANDMARK_TLS", "").lower() in ("1", "true", "yes", "on")
        return cls(
            token=env.get("LANDMARK_TOKEN") or None,
            tls=tls or ca is not None or cert is not None,
            ca=ca,
            cert=cert,
            key=_read(env.get("LANDMARK_TLS_CLIENT_KEY")),
            server_name=env.get("LANDMARK_TLS_SERVER_NAME") or None,
        )

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def _options(self, authority: str | None = None) -> list[tuple[str, Any]]:
        extra = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        if authority:  # one address of a name that resolves to several: keep the name
            extra.append(("grpc.default_authority", authority))
        return CHANNEL_OPTIONS + extra

    def _credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)

    def channel(self, address: str, authority: str | None = None) -> grpc.Channel:
        """A channel to ``address``; ``authority``: the host:port name it answers for
        (TLS checks that name), when ``address`` is one of the addresses it resolves to."""
        options = self._options(authority)
        if self.tls:
            return grpc.secure_channel(address, self._credentials(), options=options)
        return grpc.insecure_channel(address, options=options)

    def aio_channel(self, address: str) -> grpc.aio.Channel:
        if self.tls:
            return grpc.aio.secure_channel(address, self._credentials(), options=self._options())
        return grpc.aio.insecure_channel(address, options=self._options())

    def delay(self, attempt: int) -> float:
        """Backoff before retry ``attempt`` (0-based), with jitter."""
        return jittered(doubling(self.backoff, attempt + 1))

    def retry_after(
        self, error: grpc.RpcError, attempt: int, deadline: float, retry: bool
    ) -> float | None:
        """Seconds to wait before retrying a failed call on the next replica, or None
        when it must not be retried (not UNAVAILABLE, retries used up, deadline near)."""
        wait = self.delay(attempt)
        if (
            not retry
            or error.code() is not grpc.StatusCode.UNAVAILABLE
            or attempt >= self.retries
            or time.monotonic() + wait >= deadline
        ):
            return None
        return wait


# Trailing metadata of a refusal that passes with time (the search node's growing buffer
# at its bound): milliseconds to wait before sending the same request again.
RETRY_AFTER_MS = "retry-after-ms"


def retry_hint(error: grpc.RpcError) -> float | None:
    """Seconds the service asked to wait before retrying ``error``'s request, or None."""
    trailing = getattr(error, "trailing_metadata", lambda: None)() or ()
    for key, value in trailing:
        if key == RETRY_AFTER_MS:
            try:
                return max(0.0, int(value) / 1000)
            except ValueError:
                return None
    return None


def replicas(address: str) -> list[str]:
    parts = [a.strip() for a in address.split(",") if a.strip()]
    if not parts:
        raise ValueError(f"no address in {address!r}")
    return parts


def endpoints(address: str) -> list[tuple[str, str | None]]:
    """Every replica behind ``address`` (a list, or DNS names that resolve to several):
    (address to dial, the name it answers for, or None when dialled by that name)."""
    found: list[tuple[str, str | None]] = []
    for part in replicas(address):
        host, _, port = part.rpartition(":")
        try:
            infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
        except (OSError, ValueError):
            found.append((part, None))  # let gRPC report what is wrong with it
            continue
        # one family: a name with an IPv4 and an IPv6 address (localhost) is one host
        family = socket.AF_INET if any(i[0] == socket.AF_INET for i in infos) else socket.AF_INET6
        ips = sorted({str(info[4][0]) for info in infos if info[0] == family})
        if len(ips) <= 1:
            found.append((part, None))
        else:
            found += [(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", part) for ip in ips]
    return found


class Rotation:
    """Hands out the replicas' channels in turn (thread-safe)."""

    def __init__(self, channels: list[Any]) -> None:
        self.channels = channels
        self._next = itertools.cycle(range(len(channels)))
        self._lock = threading.Lock()

    def pick(self) -> int:
        with self._lock:
            return next(self._next)

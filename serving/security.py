"""TLS server credentials and bearer-token authorisation (read and write roles)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

import grpc

from .config import ServingConfig

READ = "read"
WRITE = "write"


def _read_pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise OSError(f"cannot read the {what} {path!r}: {exc.strerror}") from None


def server_credentials(config: ServingConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the config's PEM files; None = plaintext."""
    if not config.tls:
        return None
    key = _read_pem(config.tls_key, "TLS key")
    cert = _read_pem(config.tls_cert, "TLS certificate")
    ca = _read_pem(config.tls_client_ca, "client CA") if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


class TokenAuth:
    """Checks ``authorization: Bearer <token>`` metadata against the configured tokens.

    Off when no token is configured. A write token also grants read."""

    def __init__(self, read_tokens: Iterable[str], write_tokens: Iterable[str]) -> None:
        self._write = [t.encode() for t in write_tokens]
        self._read = [t.encode() for t in read_tokens] + self._write

    @property
    def enabled(self) -> bool:
        return bool(self._read)

    def check(self, metadata: Iterable[tuple[str, str | bytes]], role: str):
        """None when allowed, else (status code, message) to end the call with."""
        if not self.enabled:
            return None
        token = _bearer(metadata)
        if token is None:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: send metadata 'authorization: Bearer <token>'",
            )
        if not _known(token, self._read):
            return grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid here"
        if role == WRITE and not _known(token, self._write):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                "this token may read but not write: adding and removing images needs a write token",
            )
        return None


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> bytes | None:
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip().encode()
    return None


def _known(token: bytes, tokens: list[bytes]) -> bool:
    # compare against every token so the time taken does not say which one nearly matched
    found = False
    for t in tokens:
        found |= hmac.compare_digest(token, t)
    return found

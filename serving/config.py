"""Settings both services share (CLI flag > environment variable > default).

Each service's config class extends ServingConfig and redeclares ``host``, ``port``,
``metrics_port`` and ``max_rpcs`` with its own defaults and environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.settings import setting

LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class ServingConfig:
    # "" = loopback (127.0.0.1) without TLS, all interfaces (0.0.0.0) with TLS.
    host: str = setting("", "LANDMARK_HOST")
    port: int = setting(0, "LANDMARK_PORT")
    # Prometheus metrics over HTTP on this port (0 = any free port, -1 = off), unauthenticated,
    # so on loopback unless told otherwise (containers set 0.0.0.0 for the scraper).
    metrics_port: int = setting(-1, "LANDMARK_METRICS_PORT")
    metrics_host: str = setting("127.0.0.1", "LANDMARK_METRICS_HOST")
    # Calls in progress at once; calls beyond it get RESOURCE_EXHAUSTED at once.
    max_rpcs: int = setting(32, "LANDMARK_MAX_RPCS")
    # TLS: PEM files. A client CA turns on mutual TLS (clients must show a certificate).
    tls_cert: str = setting("", "LANDMARK_TLS_CERT")
    tls_key: str = setting("", "LANDMARK_TLS_KEY")
    tls_client_ca: str = setting("", "LANDMARK_TLS_CLIENT_CA")
    # Bearer tokens (comma-separated). Any token set turns auth on. Read tokens may call
    # Extract and Search; write tokens may also add and remove images.
    read_tokens: tuple[str, ...] = setting((), "LANDMARK_READ_TOKENS")
    write_tokens: tuple[str, ...] = setting((), "LANDMARK_WRITE_TOKENS")
    log_format: str = setting("text", "LANDMARK_LOG_FORMAT")
    grace_seconds: float = setting(5.0, "LANDMARK_GRACE_SECONDS")

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both a certificate (tls_cert) and its key (tls_key)")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("mutual TLS (tls_client_ca) needs a server certificate and key too")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {LOG_FORMATS}, got {self.log_format!r}")
        if self.metrics_port < -1 or self.metrics_port > 65535:
            raise ValueError(f"metrics_port must be -1 (off) or 0-65535, got {self.metrics_port}")
        if self.grace_seconds < 0:
            raise ValueError("grace_seconds must not be negative")
        for token in (*self.read_tokens, *self.write_tokens):
            if len(token) < 8 or any(c.isspace() for c in token):
                raise ValueError("tokens must be at least 8 characters without spaces")

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def bind_host(self) -> str:
        return self.host or ("0.0.0.0" if self.tls else "127.0.0.1")

    @property
    def address(self) -> str:
        return f"{self.bind_host}:{self.port}"

"""Settings both services share (CLI flag > environment variable > default).

Each service's config class extends ServingConfig and redeclares ``host``, ``port``,
``metrics_port`` and ``max_rpcs`` with its own defaults and environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import setting

LOG_FORMATS = ("text", "json")

# Help texts of the fields every service redeclares with its own default and variable.
HOST_HELP = 'address to bind ("" = 127.0.0.1 without TLS, 0.0.0.0 with TLS)'
PORT_HELP = "port (0 = any free port)"
METRICS_PORT_HELP = "Prometheus /metrics HTTP port (0 = any free port, -1 = off)"
MAX_RPCS_HELP = "calls in progress at once; calls beyond it get RESOURCE_EXHAUSTED at once"


@dataclass(frozen=True)
class ServingConfig:
    host: str = setting("", "LANDMARK_HOST", HOST_HELP)
    port: int = setting(0, "LANDMARK_PORT", PORT_HELP)
    # /metrics is unauthenticated, so on loopback unless told otherwise (containers set
    # 0.0.0.0 for the scraper).
    metrics_port: int = setting(-1, "LANDMARK_METRICS_PORT", METRICS_PORT_HELP)
    metrics_host: str = setting(
        "127.0.0.1", "LANDMARK_METRICS_HOST", "address the /metrics port binds"
    )
    max_rpcs: int = setting(32, "LANDMARK_MAX_RPCS", MAX_RPCS_HELP)
    tls_cert: str = setting("", "LANDMARK_TLS_CERT", "server certificate (PEM file): turns on TLS")
    tls_key: str = setting("", "LANDMARK_TLS_KEY", "the server certificate's private key (PEM)")
    tls_client_ca: str = setting(
        "", "LANDMARK_TLS_CLIENT_CA", "CA of client certificates (PEM): turns on mutual TLS"
    )
    # Any token set turns auth on. Read tokens may call Extract and Search; write tokens may
    # also add and remove images. Environment only: secrets stay out of `ps`.
    read_tokens: tuple[str, ...] = setting(
        (), "LANDMARK_READ_TOKENS", "bearer tokens that may read (comma-separated)", flag=False
    )
    write_tokens: tuple[str, ...] = setting(
        (), "LANDMARK_WRITE_TOKENS", "bearer tokens that may also write", flag=False
    )
    log_format: str = setting("text", "LANDMARK_LOG_FORMAT", "log lines as text or json")
    grace_seconds: float = setting(
        5.0, "LANDMARK_GRACE_SECONDS", "seconds calls in progress get to finish on SIGTERM"
    )

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError(
                "TLS needs both a certificate and its key: give --tls-cert and --tls-key "
                "(or LANDMARK_TLS_CERT and LANDMARK_TLS_KEY)"
            )
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("mutual TLS (--tls-client-ca) needs --tls-cert and --tls-key too")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {LOG_FORMATS}, got {self.log_format!r}")
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

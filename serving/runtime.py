"""Build, start and stop one gRPC server with everything both services share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .config import ServingConfig
from .interceptor import ServingInterceptor
from .metrics import Metrics
from .security import TokenAuth, server_credentials

log = logging.getLogger(__name__)

HEALTH_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Threads beyond max_rpcs: health checks, reflection and refusals never wait for a worker.
SPARE_THREADS = 4


@dataclass
class Running:
    """A started server: its port, health (NOT_SERVING until ``set_serving``) and metrics."""

    server: grpc.Server
    port: int
    services: tuple[str, ...]
    health: health.HealthServicer
    metrics: Metrics
    metrics_port: int | None
    interceptor: ServingInterceptor

    def set_serving(self, serving: bool = True) -> None:
        """SERVING opens the services to calls (until then they answer UNAVAILABLE)."""
        if serving:
            self.interceptor.starting = None
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.services):
            self.health.set(name, status)

    def stop(self, grace: float | None = None) -> threading.Event:
        """NOT_SERVING at once, refuse new calls, let calls in progress finish within
        ``grace`` seconds; the returned event is set once the server has stopped."""
        self.health.enter_graceful_shutdown()
        done = self.server.stop(grace)
        self.metrics.stop()
        return done


def start(
    config: ServingConfig,
    services: dict[str, Callable[[grpc.Server], None]],
    roles: dict[str, str],
    metrics: Metrics,
    max_receive_bytes: int,
    thread_prefix: str,
    starting: str = "the server is starting",
) -> Running:
    """Start a server for ``services`` ({full service name: function adding its servicer}),
    health NOT_SERVING and calls refused with UNAVAILABLE and ``starting`` until
    ``set_serving``.

    ``roles`` maps full method paths ("/pkg.Service/Method") to "read" or "write".
    """
    auth = TokenAuth(config.read_tokens, config.write_tokens)
    interceptor = ServingInterceptor(roles, auth, metrics, config.max_rpcs)
    interceptor.starting = starting
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.max_rpcs + SPARE_THREADS, thread_name_prefix=thread_prefix
        ),
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", 256 << 20),
            # gRPC turns SO_REUSEPORT on by default: a second process on the same port would
            # start and take half the connections (and half the writes, to its own index).
            ("grpc.so_reuseport", 0),
        ],
    )
    for add in services.values():
        add(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*services, HEALTH_NAME, reflection.SERVICE_NAME), server)
    credentials = server_credentials(config)
    try:
        if credentials is None:
            port = server.add_insecure_port(config.address)
        else:
            port = server.add_secure_port(config.address, credentials)
    except RuntimeError:  # grpcio's "Failed to bind"
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {config.address}: is the port in use?")
    running = Running(server, port, tuple(services), health_servicer, metrics, None, interceptor)
    running.set_serving(False)
    if config.metrics_port >= 0:
        try:
            running.metrics_port = metrics.serve(config.metrics_host, config.metrics_port)
        except OSError as exc:
            raise OSError(
                f"cannot serve metrics on {config.metrics_host}:{config.metrics_port}: {exc}"
            ) from None
    server.start()
    _log_posture(config, auth, port, running.metrics_port)
    return running


def _log_posture(config: ServingConfig, auth: TokenAuth, port: int, metrics_port) -> None:
    where = f"{config.bind_host}:{port}"
    if config.tls:
        mode = "mutual TLS" if config.tls_client_ca else "TLS"
        log.info("listening on %s with %s", where, mode)
    elif config.bind_host in ("127.0.0.1", "localhost", "::1"):
        log.info(
            "listening on %s in plaintext, loopback only (give --tls-cert and --tls-key to serve "
            "other hosts)",
            where,
        )
    else:
        log.warning(
            "listening on %s in PLAINTEXT on a non-loopback address: anyone who can reach it "
            "can read the traffic; give --tls-cert and --tls-key",
            where,
        )
    if auth.enabled:
        log.info(
            "auth on: bearer tokens (%d read, %d write)",
            len(config.read_tokens),
            len(config.write_tokens),
        )
    else:
        log.info("auth off: no tokens configured, any caller may read and write")
    if metrics_port is not None:
        log.info("metrics on http://%s:%d/metrics", config.metrics_host, metrics_port)

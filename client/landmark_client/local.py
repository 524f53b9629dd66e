"""Start both services as child processes on free loopback ports (for eval, match, demo).

The services are separate programs (``python -m extractor_service``, ``python -m
search_service``, ``python -m search_service.coordinator``) from the root project; this
module starts them as processes and never imports them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from landmark import READY_PREFIX

from .client import SearchClient
from .errors import LandmarkError

MODULES = {
    "extractor": "extractor_service",
    "search": "search_service",
    "coordinator": "search_service.coordinator",
}


def spawn_service(
    args: list[str], log_path: Path, env: dict[str, str] | None = None, ready: float = 300.0
) -> tuple[subprocess.Popen, str]:
    """Run the service ``args[0]`` (extractor, search or coordinator) with the flags
    ``args[1:]`` as a child process logging to ``log_path``; return it and the address it
    printed once listening, after its health reports SERVING (its model or index loaded;
    at most ``ready`` seconds, 0 = do not wait)."""
    service, flags = args[0], args[1:]
    module = MODULES[service]
    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise RuntimeError(
            f"the {service} service is not installed in this Python ({sys.executable}): "
            "install the project (`make install`), or give the addresses of running services "
            "(--extractor / --search)"
        )
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *flags],
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
    )
    log.close()
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith(READY_PREFIX):
                found.append(line[len(READY_PREFIX) :])
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=120)
    if not found or (ready and not _serving(proc, found[0], ready)):
        proc.kill()
        raise RuntimeError(
            f"`python -m {module} {' '.join(flags)}` did not start:\n"
            + log_path.read_text(errors="replace")[-3000:]
        )
    return proc, found[0]


class _AnyService(SearchClient):
    _health_name = ""  # a server's overall health: every service answers it


def _serving(proc: subprocess.Popen, address: str, timeout: float) -> bool:
    """Whether the service at ``address`` reports SERVING within ``timeout`` seconds
    (False as soon as its process ends): wait_ready, a second at a time."""
    deadline = time.monotonic() + timeout
    with _AnyService(address) as client:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.wait_ready(timeout=1.0)
                return proc.poll() is None
            except LandmarkError:
                continue
    return False


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(service: str, flags: list[str], folder: Path) -> tuple[subprocess.Popen, str]:
    args = [service, "--port", "0", "--metrics-port", "0", *flags]
    return spawn_service(args, folder / f"{service}.log", dict(os.environ))


@contextlib.contextmanager
def local_search(
    index_dir: str | Path | None = None, extra_args: list[str] | None = None
) -> Iterator[str]:
    """Yield the address of a freshly started search service (a scratch index in a
    temporary folder unless ``index_dir``); stop it, and delete the scratch, on exit."""
    with tempfile.TemporaryDirectory(prefix="landmark-") as tmp:
        index = Path(index_dir) if index_dir else Path(tmp) / "index"
        proc, search = _start("search", ["--index-dir", str(index), *(extra_args or [])], Path(tmp))
        try:
            yield search  # spawn_service has seen it SERVING
        finally:
            _stop([proc])


@contextlib.contextmanager
def local_extractor(
    backend: str | None = None, extra_args: list[str] | None = None
) -> Iterator[str]:
    """Yield the address of a freshly started extractor (``backend`` None: its default);
    stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="landmark-") as tmp:
        flags = [*(["--backend", backend] if backend else []), *(extra_args or [])]
        proc, extractor = _start("extractor", flags, Path(tmp))
        try:
            yield extractor
        finally:
            _stop([proc])


@contextlib.contextmanager
def local_services(
    backend: str | None = None,
    index_dir: str | Path | None = None,
    extra_args: dict[str, list[str]] | None = None,
) -> Iterator[tuple[str, str]]:
    """Yield (extractor_address, search_address) of freshly started services; stop them
    on exit. ``backend`` None: the extractor's default. The index lives in ``index_dir`` or
    in a temporary folder."""
    extra_args = extra_args or {}
    with local_extractor(backend, extra_args.get("extractor")) as extractor:
        with local_search(index_dir, extra_args.get("search")) as search:
            yield extractor, search

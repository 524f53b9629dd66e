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
from collections.abc import Iterator
from pathlib import Path

from landmark import READY_PREFIX

from .client import ExtractorClient, SearchClient

MODULES = {
    "extractor": "extractor_service",
    "search": "search_service",
    "coordinator": "search_service.coordinator",
}


def spawn_service(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Run the service ``args[0]`` (extractor, search or coordinator) with the flags
    ``args[1:]`` as a child process logging to ``log_path``; return it and the address it
    printed once listening."""
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
    if not found:
        proc.kill()
        raise RuntimeError(
            f"`python -m {module} {' '.join(flags)}` did not start:\n"
            + log_path.read_text(errors="replace")[-3000:]
        )
    return proc, found[0]


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
    with tempfile.TemporaryDirectory(prefix="landmark-") as tmp:
        index = Path(index_dir) if index_dir else Path(tmp) / "index"
        env = dict(os.environ)
        procs: list[subprocess.Popen] = []
        try:
            p1, extractor = spawn_service(
                [
                    "extractor",
                    "--port",
                    "0",
                    "--metrics-port",
                    "0",
                    *(["--backend", backend] if backend else []),
                    *extra_args.get("extractor", []),
                ],
                Path(tmp) / "extractor.log",
                env,
            )
            procs.append(p1)
            p2, search = spawn_service(
                [
                    "search",
                    "--port",
                    "0",
                    "--metrics-port",
                    "0",
                    "--index-dir",
                    str(index),
                    *extra_args.get("search", []),
                ],
                Path(tmp) / "search.log",
                env,
            )
            procs.append(p2)
            with ExtractorClient(extractor) as e, SearchClient(search) as s:
                e.wait_ready(120)
                s.wait_ready(60)
            yield extractor, search
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

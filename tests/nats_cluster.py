"""A real NATS cluster on loopback for the changelog's tests: three nats-server processes
(the binary `make install` puts in .venv/bin) with JetStream, routed to each other."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVER = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsCluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ports = [(free_port(), free_port()) for _ in range(size)]
        self.procs: list[subprocess.Popen | None] = [None] * size
        for i in range(size):
            self.start(i)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{client}" for client, _ in self.ports]

    def start(self, i: int) -> None:
        client, cluster = self.ports[i]
        routes = ", ".join(f"nats://127.0.0.1:{c}" for _, c in self.ports)
        conf = self.root / f"nats-{i}.conf"
        conf.write_text(
            f"server_name: n{i}\nlisten: 127.0.0.1:{client}\n"
            f'jetstream {{ store_dir: "{self.root}/js-{i}" }}\n'
            f"cluster {{ name: landmark, listen: 127.0.0.1:{cluster}, routes: [{routes}] }}\n"
        )
        log = open(self.root / f"nats-{i}.log", "a")
        self.procs[i] = subprocess.Popen([str(SERVER), "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", client), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server {i} did not listen on {client}")

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            self.procs[i] = None

    def stop(self) -> None:
        for i in range(len(self.procs)):
            self.kill(i)


class SlowLink:
    """A TCP link on loopback to ``port`` whose answers (server to client) can be held
    back for a while, as a congested or partitioned network holds them: what the client
    sends still arrives, and nothing is lost or reordered."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._until = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"nats://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, seconds: float) -> None:
        """Answers from now on reach the client ``seconds`` from now at the earliest."""
        self._until = time.monotonic() + seconds

    def close(self) -> None:
        for s in self._sockets:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, held: bool) -> None:
        try:
            while data := source.recv(65536):
                while held and time.monotonic() < self._until:
                    time.sleep(0.01)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

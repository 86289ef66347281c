"""``coeflow worker`` in its own process, for the tests and the benchmark."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from coeflow.tools.broker import free_port

TOKEN = "local-worker-token"
"""The admin token of workers started here (they listen on 127.0.0.1 only)."""


class WorkerProcess:
    """``coeflow worker`` in its own process, as an operator would run it."""

    def __init__(
        self, bootstrap: str, app_id: str, workdir: Path, token: str = TOKEN, **env: str
    ) -> None:
        self.bootstrap, self.app_id, self.workdir, self.token = bootstrap, app_id, workdir, token
        self.port = free_port()
        self.extra_env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.app_id}-{self.port}.log"

    def start(self) -> WorkerProcess:
        self.starts += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "COEFLOW_KAFKA_BOOTSTRAP": self.bootstrap,
            "COEFLOW_APP_ID": self.app_id,
            "COEFLOW_WEB_PORT": str(self.port),
            "COEFLOW_ADMIN_TOKEN": self.token,
            "COEFLOW_GROUP_SESSION_TIMEOUT": "2",
            "COEFLOW_DATA_DIR": str(self.workdir / f"data-{self.port}"),
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "coeflow", "worker", "-l", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    async def wait_ready(self, within: float = 60.0) -> WorkerProcess:
        """Until the worker's definitions are loaded and it holds partitions."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"worker exited: {self.log_tail()}")
                try:
                    async with http.get(f"{self.url}/health") as response:
                        health = await response.json()
                        holds_events = "processor" not in health["roles"] or bool(
                            health["record_change_partitions"]
                        )
                        if health["ready"] and holds_events:
                            return self
                except (aiohttp.ClientError, OSError):
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"worker not ready within {within}s: {self.log_tail()}")

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/health") as response:
            result: dict[str, Any] = await response.json()
            return result

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (Linux ``/proc``), 0 where unknown."""
        assert self.process is not None
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_bytes(self) -> int:
        """The process's peak resident memory (Linux ``VmHWM``), 0 where unknown."""
        return self._memory("VmHWM:")

    def rss_bytes(self) -> int:
        """The process's resident memory now (Linux ``VmRSS``), 0 where unknown."""
        return self._memory("VmRSS:")

    def _memory(self, field: str) -> int:
        assert self.process is not None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        return 0

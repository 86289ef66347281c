"""``coeflow worker`` in processes of its own: ``--processes N`` (``run_processes``), and one
worker process for the tests and the benchmark (``WorkerProcess``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from coeflow.settings import Settings
from coeflow.tools.broker import can_listen, die_with_parent, free_port

TOKEN = "local-worker-token"
"""The admin token of workers started here (they listen on 127.0.0.1 only)."""


PROCESSES_OPTION = "--processes"


def processes_asked(argv: list[str], settings: Settings) -> int:
    """How many processes ``coeflow worker`` is asked for (``--processes N`` or
    ``--processes=N``, else ``COEFLOW_PROCESSES``); the option is taken out of ``argv``, which
    Faust parses next."""
    count: str | int = settings.processes
    for n, arg in enumerate(argv):
        if arg == PROCESSES_OPTION and n + 1 < len(argv):
            count = argv[n + 1]
            del argv[n : n + 2]
            break
        if arg.startswith(f"{PROCESSES_OPTION}="):
            count = arg.split("=", 1)[1]
            del argv[n]
            break
    if not str(count).isdigit() or not 1 <= int(count) <= 64:
        raise SystemExit(f"coeflow worker: {PROCESSES_OPTION} takes a whole number from 1 to 64")
    return int(count)


def run_processes(count: int, argv: Sequence[str], settings: Settings) -> int:
    """Run ``coeflow worker`` ``count`` times over, each process a member of the same
    consumer groups (the partitions are shared out among them as among workers on several
    machines), process *n* with the admin API on ``COEFLOW_WEB_PORT`` + *n* and its files in
    ``COEFLOW_DATA_DIR``/process-*n*. SIGTERM and SIGINT go to every process; when one exits,
    the others are stopped and its exit status is ours: a supervisor (systemd, Kubernetes)
    restarts the whole, not a part that would leave the machine short of a process."""
    if any(arg in ("-p", "--web-port") or arg.startswith("--web-port=") for arg in argv):
        raise SystemExit(
            f"coeflow worker: with {PROCESSES_OPTION}, process n takes COEFLOW_WEB_PORT + n; "
            "set COEFLOW_WEB_PORT instead of --web-port"
        )
    children = []
    for n in range(count):
        data_dir = settings.data_dir / f"process-{n}"
        data_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
        env = {
            **os.environ,
            "COEFLOW_PROCESSES": "1",
            "COEFLOW_WEB_PORT": str(settings.web_port + n),
            "COEFLOW_DATA_DIR": str(data_dir),
        }
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "coeflow", "worker", *argv],
                env=env,
                process_group=0,  # a Ctrl-C reaches them once, from here
                preexec_fn=die_with_parent,
            )
        )
    asked_to_stop = False

    def forward(signum: int, _: object) -> None:
        nonlocal asked_to_stop
        asked_to_stop = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = _first_exit(children)
        if not asked_to_stop:
            sys.stderr.write(
                f"coeflow worker: a process exited (status {status}); stopping the others\n"
            )
            forward(signal.SIGTERM, None)
        for child in children:
            _stop(child)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def _first_exit(children: list[subprocess.Popen[bytes]]) -> int:
    while True:
        for child in children:
            status = child.poll()
            if status is not None:
                return status
        time.sleep(0.2)


def _stop(child: subprocess.Popen[bytes], within: float = 30.0) -> None:
    try:
        child.wait(within)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive ports free on ``host`` (for ``--processes``)."""
    for _ in range(100):
        first = free_port(host)
        if all(can_listen(host, first + n) for n in range(1, count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports")


class WorkerProcess:
    """``coeflow worker`` in its own process, as an operator would run it."""

    def __init__(
        self,
        bootstrap: str,
        app_id: str,
        workdir: Path,
        token: str = TOKEN,
        processes: int = 1,
        **env: str,
    ) -> None:
        self.bootstrap, self.app_id, self.workdir, self.token = bootstrap, app_id, workdir, token
        self.processes = processes
        """``coeflow worker --processes``: process *n* answers on ``port`` + *n*."""
        self.port = free_ports(processes)
        self.extra_env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def urls(self) -> list[str]:
        """The admin API of each process."""
        return [f"http://127.0.0.1:{self.port + n}" for n in range(self.processes)]

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
                [
                    sys.executable,
                    *("-m", "coeflow", "worker", "-l", "info"),
                    *(("--processes", str(self.processes)) if self.processes > 1 else ()),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    async def wait_ready(self, within: float = 60.0) -> WorkerProcess:
        """Until the worker's definitions are loaded and it holds partitions (each of its
        processes)."""
        deadline = time.monotonic() + within
        waiting = list(self.urls)
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"worker exited: {self.log_tail()}")
                try:
                    for url in list(waiting):
                        async with http.get(f"{url}/health") as response:
                            health = await response.json()
                        holds_events = "processor" not in health["roles"] or bool(
                            health["record_change_partitions"]
                        )
                        if health["ready"] and holds_events:
                            waiting.remove(url)
                    if not waiting:
                        return self
                except (aiohttp.ClientError, OSError):
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"worker not ready within {within}s: {self.log_tail()}")

    async def health(self, process: int = 0) -> dict[str, Any]:
        """``/health`` of process ``process`` (of ``--processes``)."""
        url = self.urls[process]
        async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as response:
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

    def pids(self) -> list[int]:
        """The worker's process and, with ``--processes``, the processes it started."""
        assert self.process is not None
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return [pid, *map(int, children)]

    def cpu_seconds(self) -> float:
        """CPU time the worker's processes have used so far (Linux ``/proc``), 0 where
        unknown."""
        total = 0.0
        for pid in self.pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after the command name (it may hold spaces)
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def peak_rss_bytes(self) -> int:
        """The peak resident memory of the worker's processes, summed (Linux ``VmHWM``), 0
        where unknown."""
        return self._memory("VmHWM:")

    def rss_bytes(self) -> int:
        """The resident memory of the worker's processes now, summed (Linux ``VmRSS``), 0
        where unknown."""
        return self._memory("VmRSS:")

    def _memory(self, field: str) -> int:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith(field):
                    total += int(line.split()[1]) * 1024
        return total

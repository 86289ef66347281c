"""Where a processor worker's own CPU goes, by stage: a sampling profile of the worker process
itself (py-spy, attached from outside, the process not paused), folded into stages.

The stages of ``bench/stages.py`` are the pure core's, measured in the bench's process, and
what the worker spends beyond them is inferred: its measured CPU less theirs, two figures taken
minutes apart on a machine whose speed drifts. This profile is of the worker while it works,
so every stage (the network side too) is a share of the same samples; each share is scaled to
the CPU the worker was measured to spend an event in the same pass.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from asyncio import selector_events
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiokafka.conn import AIOKafkaConnection
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.producer.sender import Sender

from processor.batch_reading import BatchReader
from processor.batch_sending import RecordBatchSender
from processor.batches import BatchProcessor
from processor.changes import ChangeProcessor
from processor.checkpoint import Checkpoint
from processor.core.decide import decide
from processor.core.index import WorkflowIndex
from processor.core.pipeline import decode_change, encode_runs, process_change
from topics.hot_events import fast_change

_SOCKET_TRANSPORT = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009  # private
"""asyncio's transport of a socket, whose ``_read_ready`` takes in what the broker sent."""

_FUNCTIONS: Mapping[str, tuple[Callable[..., Any], ...]] = {
    "decode": (decode_change, fast_change),  # the second alone where a sample lost a frame
    "index": (WorkflowIndex.watching,),
    "decide": (decide,),
    "encode": (encode_runs,),
    "core's other": (process_change, ChangeProcessor.process),
    "hand-over": (RecordBatchSender.hand_over,),
    "producing": (Sender._send_produce_req, Sender._sender_routine),
    "fetching": (BatchReader.fetch, Fetcher._fetch_requests_routine, Fetcher._proc_fetch_request),
    "settling and committing": (
        BatchProcessor._finish,
        Checkpoint.follow,
        GroupCoordinator._do_commit_offsets,
    ),
    "reading responses": (AIOKafkaConnection._read, _SOCKET_TRANSPORT._read_ready),
}
STAGES: Mapping[str, frozenset[str]] = {
    stage: frozenset(f.__qualname__ for f in functions) for stage, functions in _FUNCTIONS.items()
}
"""Each stage by the functions whose samples are its own, by their qualified names (py-spy's;
none of them is a name the libraries in these stacks use elsewhere): a sample is the stage of
the innermost of its frames named here, so a call one stage makes to another
(``process_change`` calling ``decide``) counts for the inner one, and a sample caught while a
call is being made counts for the caller. They are the functions themselves above, so that one
renamed fails here rather than falling into the rest."""
_STAGE_OF_NAME: Mapping[str, str] = {
    name: stage for stage, names in STAGES.items() for name in names
}
THE_REST = "the loop and the rest"
"""Samples under none of them: mostly the event loop's own work (its callbacks, the selector),
and timers, heartbeats and Faust's services."""


def stage_of(stack: Iterable[str]) -> str:
    """The stage of one sample, its frames from the outermost to the innermost (py-spy's raw
    format: ``qualified.name (path:line)``)."""
    for frame in reversed(list(stack)):
        stage = _STAGE_OF_NAME.get(frame.split(" (", 1)[0])
        if stage is not None:
            return stage
    return THE_REST


def shares(raw: str) -> tuple[dict[str, float], int]:
    """Each stage's share of the samples of a py-spy raw profile (one ``frames count`` line a
    stack, frames joined by ``;``), in ``STAGES``' order, and the count of samples."""
    counts = dict.fromkeys([*STAGES, THE_REST], 0)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        counts[stage_of(stack.split(";"))] += int(count)
    total = sum(counts.values())
    return ({stage: n / total for stage, n in counts.items()} if total else {}), total


def us_by_stage(stage_shares: Mapping[str, float], cpu_us: float) -> dict[str, float]:
    """``stage_shares`` of ``cpu_us``, the worker's measured CPU an event."""
    return {stage: round(share * cpu_us, 1) for stage, share in stage_shares.items()}


def py_spy() -> str | None:
    """The py-spy beside this Python (the bench's environment), or on the path."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


ATTACHED = "Sampling process"
"""What py-spy writes (on its standard output) once it is attached and sampling."""


class Sampling:
    """py-spy recording one process from ``start`` (which returns once it samples, or has
    failed) until ``stop``; ``raw`` is what it recorded (``""``, and ``error`` says why, when
    it could not: no py-spy, no permission to attach, no such process, no samples)."""

    def __init__(self, output: Path, rate: int) -> None:
        self.output, self.rate = output, rate
        self.raw = ""
        self.error: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._said: list[str] = []

    async def start(self, pid: int, within: float = 20.0) -> None:
        tool = py_spy()
        if tool is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return
        self.output.unlink(missing_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            *(tool, "record", "--pid", str(pid), "--rate", str(self.rate)),
            *("--nonblocking", "--format", "raw", "--output", str(self.output)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,  # its progress; its errors, with its own
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "RUST_BACKTRACE": "0"},  # its reason, not a Rust backtrace
        )
        try:
            await asyncio.wait_for(self._until_attached(), within)
        except TimeoutError:
            self.error = f"py-spy did not attach within {within:g} s"
            await self._end()

    async def _until_attached(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := (await self._process.stdout.readline()).decode(errors="replace"):
            if ATTACHED in line:
                return  # sampling; a SIGINT from here on makes it write its file
            if line.strip():
                self._said.append(line.strip())
        await self._process.wait()  # it ended without sampling: its lines say why
        self.error = f"py-spy could not sample the process: {self._reason()}"

    async def stop(self) -> None:
        """Stop sampling and read what was recorded; safe to call whatever ``start`` did."""
        if self._process is None:
            return
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        try:
            said, _ = await asyncio.wait_for(self._process.communicate(), 30)
        except TimeoutError:
            self.error = "py-spy did not stop within 30 s"
            await self._end()
            return
        self._said += [s.strip() for s in said.decode(errors="replace").splitlines() if s.strip()]
        if self.error is not None:
            return
        if self.output.exists():
            self.raw = self.output.read_text()
        if not shares(self.raw)[1]:
            self.error = f"py-spy recorded no samples: {self._reason()}"

    async def _end(self) -> None:
        assert self._process is not None
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()

    def _reason(self) -> str:
        """py-spy's own line of error, else its last line."""
        errors = [line for line in self._said if line.startswith("Error")]
        return (errors or self._said or ["it gave no reason"])[-1]

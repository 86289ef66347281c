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
import shutil
import signal
import sys
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
    "reading responses": (AIOKafkaConnection._read,),
}
STAGES: Mapping[str, frozenset[str]] = {
    stage: frozenset(f.__qualname__ for f in functions) for stage, functions in _FUNCTIONS.items()
}
"""Each stage by the functions whose samples are its own, by their qualified names (py-spy's):
a sample is the stage of the innermost of its frames named here, so a call one stage makes to
another (``process_change`` calling ``decide``) counts for the inner one. They are the functions
themselves above, so that one renamed fails here rather than falling into the rest."""
THE_REST = "the loop and the rest"
"""Samples under none of them: the event loop's own work, the selector, timers, Faust's
services."""


def stage_of(stack: Iterable[str]) -> str:
    """The stage of one sample, its frames from the outermost to the innermost (py-spy's raw
    format: ``qualified.name (path:line)``)."""
    for frame in reversed(list(stack)):
        name = frame.split(" (", 1)[0]
        for stage, names in STAGES.items():
            if name in names:
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
    return {stage: round(share * cpu_us, 2) for stage, share in stage_shares.items()}


def py_spy() -> str | None:
    """The py-spy beside this Python (the bench's environment), or on the path."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Sampling:
    """py-spy recording one process until ``stop``; ``raw`` is what it wrote (``""``, and
    ``error`` says why, when it could not: no py-spy, no permission to attach)."""

    def __init__(self, pid: int, output: Path, rate: int) -> None:
        self.pid, self.output, self.rate = pid, output, rate
        self.raw = ""
        self.error: str | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        tool = py_spy()
        if tool is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return
        self.output.unlink(missing_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            *(tool, "record", "--pid", str(self.pid), "--rate", str(self.rate)),
            *("--nonblocking", "--format", "raw", "--output", str(self.output)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def stop(self) -> None:
        if self._process is None:
            return
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        try:
            _, stderr = await asyncio.wait_for(self._process.communicate(), 30)
        except TimeoutError:
            self._process.kill()
            self.error = "py-spy did not stop within 30 s"
            return
        if self.output.exists():
            self.raw = self.output.read_text()
        else:
            lines = stderr.decode(errors="replace").strip().splitlines()
            self.error = f"py-spy wrote nothing: {lines[-1] if lines else 'no reason given'}"

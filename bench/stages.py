"""Where a processor's CPU goes, by stage: the pure core over a workload's events in the
bench's own process, with the collector as a worker has it (``as_in_a_worker``: the bench's
own data, which grows through a run, is not walked by each full collection), profiled, each
stage's share of the profile scaled to the core's time measured without the profiler (a
profiler slows small calls most, so its shares, not its times, are kept); and the CPU of
appending the outputs to record batches, as the processor's sender does. What a worker spends
beyond these (fetching, the network side of sending, committing, the event loop) is its
measured CPU an event less their sum.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Sequence
from typing import Any, get_args

from bench.workload import core_outcomes
from coeflow.collector import as_in_a_worker
from coeflow.settings import Compression, Settings
from processor.core.index import WorkflowIndex
from processor.core.pipeline import Outbound

STAGES: dict[str, tuple[str, ...]] = {
    "decode": ("decode_change",),
    "index": ("watching",),
    "decide": ("decide",),
    "encode": ("encode_runs",),
}
"""Each stage of the core, by the functions of ``processor/core/`` whose cumulative time it is
(renamed functions fall into "other": the report shows it)."""


def _core(
    events: Sequence[tuple[bytes, bytes]], index: WorkflowIndex, keep: bool = True
) -> tuple[float, list[Outbound]]:
    """Seconds of CPU the core took over ``events`` (record state kept as a worker keeps it),
    and every output it made unless not ``keep``: kept, the outputs of thousands of events
    take fresh memory, and its page faults (microseconds each on a virtual machine) would be
    timed as encoding, which a worker, freeing each batch's outputs, does not pay."""
    settings = Settings(_env_file=None, kafka_bootstrap="stages:0")
    outputs: list[Outbound] = []
    began = time.process_time()
    for outcome in core_outcomes(events, index, settings):
        if keep:
            outputs += outcome.messages
    return time.process_time() - began, outputs


def core_stages(events: Sequence[tuple[bytes, bytes]], index: WorkflowIndex) -> dict[str, float]:
    """µs of CPU an event in each stage of the core ("core": all of it, "other": the rest),
    with the collector as a worker has it (the bench's own data frozen)."""
    with as_in_a_worker():
        seconds, _ = _core(events, index, keep=False)
        profile = cProfile.Profile()
        profile.enable()
        _core(events, index, keep=False)
        profile.disable()
    stats: dict[tuple[str, int, str], Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(tottime for _, _, tottime, _, _ in stats.values()) or 1.0
    per_event = seconds / len(events) * 1e6
    shares: dict[str, float] = {}
    for stage, names in STAGES.items():
        cumulative = sum(
            entry[3]
            for (path, _, name), entry in stats.items()
            if name in names and "processor/core" in path.replace("\\", "/")
        )
        shares[stage] = cumulative / total
    figures = {stage: round(share * per_event, 2) for stage, share in shares.items()}
    figures["other"] = round(max(per_event - sum(figures.values()), 0.0), 2)
    figures["core"] = round(per_event, 2)
    return figures


def outputs_by_event(
    events: Sequence[tuple[bytes, bytes]], index: WorkflowIndex
) -> list[list[tuple[bytes | None, bytes | None]]]:
    """The (key, value) of every message the core writes for each of ``events``."""
    settings = Settings(_env_file=None, kafka_bootstrap="stages:0")
    return [
        [(m.key, m.value) for m in outcome.messages]
        for outcome in core_outcomes(events, index, settings)
    ]


def output_bytes(events: Sequence[tuple[bytes, bytes]], index: WorkflowIndex) -> float:
    """Bytes the core writes an event (values and keys): what the broker must take, and on a
    broker that writes slower than the core decides, what bounds the processor."""
    _, outputs = _core(events, index)
    total = sum(len(m.value or b"") + len(m.key or b"") for m in outputs)
    return round(total / len(events), 1)


def send_us(events: Sequence[tuple[bytes, bytes]], index: WorkflowIndex, producer: Any) -> float:
    """µs of CPU an event to append the core's outputs to record batches and build them
    (``producer``'s ``create_batch``, compressed with its codec, as ``RecordBatchSender`` builds
    them; nothing is sent)."""
    _, outputs = _core(events, index)
    seconds, _ = _built(outputs, producer)
    return round(seconds / len(events) * 1e6, 2)


CODECS: tuple[Compression, ...] = get_args(Compression)
"""The codecs ``COEFLOW_COMPRESSION`` offers, each measured by ``codec_costs``."""


def codec_costs(
    events: Sequence[tuple[bytes, bytes]], index: WorkflowIndex, producer_of: Any
) -> dict[str, dict[str, float]]:
    """For each codec: µs of CPU an event to append the core's outputs to record batches and
    build them, and the bytes written an event (as stored), from ``producer_of(codec)``."""
    _, outputs = _core(events, index)
    costs: dict[str, dict[str, float]] = {}
    for codec in CODECS:
        seconds, written = _built(outputs, producer_of(codec))
        costs[codec] = {
            "us": round(seconds / len(events) * 1e6, 2),
            "bytes": round(written / len(events), 1),
        }
    return costs


def _built(outputs: Sequence[Outbound], producer: Any) -> tuple[float, int]:
    """Seconds of CPU to append ``outputs`` to record batches, by topic and partition, and
    build each, and the bytes of the batches built."""
    began = time.process_time()
    batches: dict[tuple[str, int | None], Any] = {}
    written = 0
    for message in outputs:
        where = (message.topic, message.partition)
        batch = batches.get(where)
        if batch is None:
            batch = batches[where] = producer.create_batch()
        if batch.append(key=message.key, value=message.value, timestamp=None) is None:
            written += len(batch._build())  # what send_batch does with a full batch
            batch = batches[where] = producer.create_batch()
            batch.append(key=message.key, value=message.value, timestamp=None)
    for batch in batches.values():
        written += len(batch._build())
    return time.process_time() - began, written

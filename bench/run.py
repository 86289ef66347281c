"""``coeflow bench``: how fast the processor is, next to the physical limit of this machine.

One broker for the whole run (an embedded Tansu, or ``COEFLOW_KAFKA_BOOTSTRAP``). Two
workloads (``bench/workload.py``): the mixed one, where about one event in twenty matches, and
every-event-runs, where every event starts a run and about half issue an ``add_note``. For
each, the bench publishes its events, notes where they begin in each partition (from the
broker's own answers to the sends, so Tansu's wrong end offsets do not matter), makes the
workload's workflows the only ones on the definitions topic, and starts its consumers exactly
there:

1. the plain pipe: aiokafka ``getmany`` → one orjson parse per event → the events sent on as
   record batches (as the processor sends), no matching; the most any processor can do on
   this broker and machine. On the mixed workload next to it two variants (``PIPES``): one
   ``send`` per event (the usual way to write a pipe, about 2.5 times the CPU), and validation
   into ``ChangeEvent`` instead of the parse (what the contract's schema alone costs); on
   the every-event-runs workload the same pipe writing, for each event, the messages the
   processor writes for one, compressed with its codec (``SIZED``: about what taking the
   processor's output costs the broker);
2. the processor: ``coeflow worker`` with the processor role alone (``COEFLOW_ROLES=processor``:
   record changes in, runs and commands out; no admin API, run history or run tracker, which
   are the api role's), the goal's figure, in a fresh consumer group, timed from the moment it
   holds its partitions to the last expected run record (the pure core, run here over the same
   events, says how many to expect); 1 and 2 alternate for
   ``--rounds`` rounds, and each reports its best round (this machine's speed drifts from
   minute to minute; every round is kept in the figures);
3. where the CPU goes: one more pass of the processor worker, sampled by py-spy from outside
   (``bench/worker_profile.py``; ``--profile-rate 0`` leaves it out), its own CPU an event by
   stage, the network side included; and the pure core profiled here by stage, and the
   batches' appends (``bench/stages.py``), against the worker's measured CPU an event; where
   every event runs, the pure core beside the least Python that writes its outputs
   (``bench/floor.py``);
4. latency at half the measured maximum: send → run record and send → action command, and
   the same for one plain hop (the pipe of 1, in a process of its own, at the same load and
   read the same way), each p50/p95/p99;
5. ``coeflow worker --processes 2``;
6. (every event runs) one worker with every role, as ``coeflow dev`` runs it (its run
   history, run tracker and projections read back every run record it writes), idle first
   and then given the workload's events afresh: from its first run record to its last, its
   CPU until those readers have caught up, and its latency at 5,000 events/s (the mixed
   workload's actions would go to executors with no peers here, unlike ``coeflow dev``'s);
7. (mixed) the processor with 100, 10,000 and 100,000 workflows (the extra ones belong to
   tenants no event touches);
8. a backtest (``bench/backtest.py``): live processing alone and beside a backtest over a
   tenant's ``--backtest-history`` record changes, the backtest's own speed and the pure
   fold's; ``--only-backtest`` runs this alone (figures in ``bench-backtest.json``),
   ``--backtest-history 0`` leaves it out (``make soak``).

Every reader here fetches with ``COEFLOW_FETCH_WAIT`` as the workers do: with the clients'
default wait the embedded broker would add its own delay to every figure of 4.

Figures go to ``bench-results/bench.json`` and a chart to ``bench-results/bench.png``; the
worker's profile of each workload to ``bench-results/worker-profile-*.txt`` (py-spy's raw
format, for a flame graph).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import resource
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from actions.registry import REGISTRY as ACTION_TYPES
from bench.backtest import BacktestFigures
from bench.backtest import measure as measure_backtest
from bench.floor import bare_and_core
from bench.kafka_io import (
    Offsets,
    RunCounter,
    append_or_send,
    fences,
    position_group,
    position_worker,
    progress,
    prompt_consumer,
    publish,
    publish_batches,
    read_from,
)
from bench.stages import (
    CODECS,
    codec_costs,
    core_stages,
    output_bytes,
    outputs_by_event,
    send_us,
)
from bench.worker_profile import Sampling, shares, us_by_stage
from bench.workload import (
    CreatedLeads,
    EventSource,
    decided_runs,
    every_event_workflows,
    index_of,
    unrelated_workflows,
    workflows,
)
from coeflow.collector import as_in_a_worker
from coeflow.settings import Compression, Settings, producer_codec
from coeflow.tools.broker import EmbeddedBroker, free_port
from coeflow.tools.processes import WorkerProcess
from processor.batches import MAX_BATCH_BYTES
from processor.core.index import WorkflowIndex
from processor.topic_creation import create_missing, ensure_topics
from topics import codec
from topics.catalog import (
    ACTION_OUTCOMES,
    DEFINITIONS,
    RECORD_CHANGES,
    RUNS,
    TopicSpec,
    action_topic,
)
from topics.commands import ActionCommand
from topics.events import ChangeEvent
from topics.outcomes import ActionOutcome
from topics.runs import SourcePosition
from topics.workflows import Workflow

PIPE_OUT = "bench.pipe-out"
Written = list[tuple[bytes | None, bytes | None]]
"""The (key, value) of each message the processor writes for one event."""


@dataclass(frozen=True)
class Pipe:
    """A plain pipe: how it reads each event, and how it sends the events on."""

    name: str
    read: Callable[[bytes], object]
    send_per_event: bool = False
    """One ``producer.send`` per event, batched by the producer (linger 5 ms), instead of
    record batches built whole (``create_batch`` / ``send_batch``, as the processor sends)."""
    sized: bool = False
    """Instead of each event, the messages the processor writes for an event (its run record,
    and a command for about half of them), those of the profiled events in turn, compressed
    with the processor's codec (``COEFLOW_COMPRESSION``); batched as the pipe batches (by input
    partition, where the processor batches by output topic and partition)."""


PLAIN = Pipe("plain", orjson.loads)
"""(a): the physical limit, which the goal measures the processor against."""
PIPES = (
    PLAIN,
    # The benchmark's plain pipe until 2026-11-26: a send costs a coroutine, a future and the
    # producer's bookkeeping per event.
    Pipe("send per event", orjson.loads, send_per_event=True),
    Pipe("validating", ChangeEvent.model_validate_json),
)
SIZED = Pipe("outputs", orjson.loads, sized=True)
"""(a) writing the processor's output bytes, compressed with its codec, in the pipe's batches:
where every event runs, the processor writes three times the bytes it reads, which the broker
on the same cores must take (the figure includes the pipe's compression)."""


@dataclass(frozen=True)
class Measured:
    events_per_second: int
    cpu_us: float
    """CPU time an event in µs: the benchmark's own for a pipe, the workers' for a processor."""


MIXED, EVERY_EVENT = "mixed", "every event runs"
WORKLOADS = (MIXED, EVERY_EVENT)


DEV_LOAD = 5_000
"""Events a second at which the every-role worker's latency is measured: where `coeflow dev`
fell behind by two seconds (issue 17)."""


@dataclass(frozen=True)
class EveryRole:
    """``Bench.every_role``'s figures."""

    measured: Measured
    catch_up_seconds: float
    load: int
    latency_ms: dict[str, dict[str, float]]


@dataclass
class Options:
    workflows: int = 10_000
    tenants: int = 1_000
    events: int = 200_000
    """Events of each workload."""
    workloads: tuple[str, ...] = WORKLOADS
    scale_events: int = 50_000
    scale_workflows: tuple[int, ...] = (100, 10_000, 100_000)
    rounds: int = 3
    """Rounds of the pipes and the processor, alternating; each reports its best."""
    latency_seconds: float = 20.0
    latency_load: float = 0.0
    """Events a second offered for the latency; 0: half the processor's measured maximum."""
    stage_events: int = 20_000
    """Events of each workload the core is profiled over, by stage."""
    profile_rate: int = 250
    """Samples a second of the profiled pass of the worker (py-spy); 0: no such pass."""
    soak_seconds: float = 0.0
    soak_load: float = 0.0
    """Events a second in the soak; 0: half the processor's measured maximum (mixed)."""
    backtest_history: int = 100_000
    """A tenant's record changes the backtest section replays (``bench/backtest.py``)."""
    backtest_live: int = 20_000
    """Live events of each round beside it."""
    only_backtest: bool = False
    """Run the backtest section alone."""
    output: Path = Path("bench-results")


@dataclass
class WorkloadFigures:
    """One workload's figures."""

    workflows: int = 0
    events: int = 0
    event_bytes: float = 0.0
    matching_share: float = 0.0
    runs_expected: int = 0
    core_events_per_second: float = 0.0
    pipe_events_per_second: dict[str, int] = field(default_factory=dict)
    """The best round of each pipe, by name."""
    processor_events_per_second: int = 0
    processor_cpu_us: float = 0.0
    """The worker's CPU an event in its best round."""
    ratio: dict[str, float] = field(default_factory=dict)
    """Processor / pipe, best round to best round, by pipe; ``ratio["plain"]`` is the goal's."""
    pipe_rounds: dict[str, list[Measured]] = field(default_factory=dict)
    processor_rounds: list[Measured] = field(default_factory=list)
    output_bytes_per_event: float = 0.0
    """What the core writes an event (run records, commands, state): the broker's load."""
    cpu_us_by_stage: dict[str, float] = field(default_factory=dict)
    """µs of CPU an event: the core's stages (decode, index, decide, encode, other), send (the
    appends to record batches and their compression, as the worker's ``COEFLOW_COMPRESSION``),
    and the worker beyond them (its measured CPU less the rest)."""
    worker_cpu_us_by_stage: dict[str, float] = field(default_factory=dict)
    """µs of CPU an event by stage (``bench.worker_profile.STAGES``) from a profile of the
    worker itself, in a pass of its own."""
    worker_profile_samples: int = 0
    worker_profile_error: str | None = None
    """Why there is no profile of the worker (no py-spy, no permission to attach)."""
    bare_and_core_us: dict[str, float] = field(default_factory=dict)
    """(every event runs) µs of CPU an event of "bare", the least Python that writes what the
    core writes, and of "core", alternated (``bench/floor.py``): what the core costs beyond its
    work, and what the work itself costs in CPython here."""
    codec_costs: dict[str, dict[str, float]] = field(default_factory=dict)
    """For each codec ``COEFLOW_COMPRESSION`` offers: "us", the send's µs an event with it, and
    "bytes", the record batches' bytes an event (``bench/stages.py``, ``codec_costs``)."""
    offered_load: float = 0.0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    """At ``offered_load``: "run record" and "action command" (send → read back, through the
    processor) and "plain hop" (send → read back, through the plain pipe), p50/p95/p99."""
    p99_to_hop: dict[str, float] = field(default_factory=dict)
    """The processor's p99s over the plain hop's: the goal is 2 or less."""
    peak_rss_mb: float = 0.0
    """The processor's, after its last round and the latency."""
    two_processes_events_per_second: int = 0
    two_processes_cpu_us: float = 0.0
    scaling_factor: float = 0.0
    every_role_events_per_second: int = 0
    """One worker with every role (``coeflow dev``'s: processor, api, executors), from its
    first run record to its last (``Bench.every_role``)."""
    every_role_cpu_us: float = 0.0
    """Its CPU an event until it is idle: its run history, run tracker and projections have
    read every run record it wrote (``every_role_catch_up_seconds`` after the last one)."""
    every_role_catch_up_seconds: float = 0.0
    every_role_load: int = 0
    every_role_latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    """The every-role worker's "run record" and "action command" latency at
    ``every_role_load`` events a second (``DEV_LOAD``, or half its speed if less)."""


@dataclass
class Figures:
    machine: dict[str, Any]
    options: dict[str, Any]
    workloads: dict[str, WorkloadFigures] = field(default_factory=dict)
    by_workflow_count: dict[str, float] = field(default_factory=dict)
    soak: dict[str, Any] = field(default_factory=dict)
    backtest: BacktestFigures | None = None


async def complete_actions(bootstrap: str, start: Offsets) -> None:
    """Answer every command read from ``start`` with a succeeded outcome, at once and in
    batches, until cancelled: executors and a CRM that never fail, never wait."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=-1)
    await consumer.start()
    await producer.start()
    try:
        read_from(consumer, start)
        while True:
            sent = []
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    if record.value is None:
                        continue
                    command = codec.decode(record.value, ActionCommand)
                    outcome = ActionOutcome.of(
                        command,
                        source=SourcePosition(
                            topic=tp.topic, partition=tp.partition, offset=record.offset
                        ),
                        attempt=1,
                        status="succeeded",
                        at=datetime.now(UTC),
                        detail="completed by the soak",
                    )
                    sent.append(
                        await producer.send(
                            ACTION_OUTCOMES, codec.dumps(outcome), key=command.run_id.encode()
                        )
                    )
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
        await consumer.stop()


async def plain_pipe(
    bootstrap: str,
    start: Offsets,
    expected: int,
    pipe: Pipe = PLAIN,
    written: Sequence[Written] = (),
    compression: Compression = "none",
) -> Measured:
    """Consume → read each event → produce, doing nothing else; the events go on as record
    batches, one or more per input partition, unless ``pipe.send_per_event``; ``written``'s
    messages in their place, compressed with ``compression``, if ``pipe.sized``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=32 << 20,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5 if pipe.send_per_event else 0,
        max_batch_size=MAX_BATCH_BYTES,
        acks=-1,
        # the processor's bytes as the processor writes them; the plain pipe's as they came
        compression_type=producer_codec(compression) if pipe.sized else None,
    )
    label = f"pipe, {pipe.name}"
    await consumer.start()
    await producer.start()
    try:
        read_from(consumer, start)
        out = sorted(await producer.partitions_for(PIPE_OUT))
        began, began_cpu, seen = time.monotonic(), _cpu_seconds(), 0
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            pending: list[asyncio.Future[RecordMetadata]] = []
            for tp, messages in batches.items():
                seen += len(messages)
                if pipe.send_per_event:
                    for message in messages:
                        pipe.read(message.value)
                        pending.append(
                            await producer.send(PIPE_OUT, message.value, key=message.key)
                        )
                else:
                    # One input partition to one output partition: each key keeps its order.
                    partition = out[tp.partition % len(out)]
                    pending += await _read_and_send_batches(
                        pipe, producer, messages, partition, written
                    )
            await asyncio.gather(*pending)
            progress.show(f"  {label}: {seen:,}/{expected:,}")
        return Measured(
            round(expected / (time.monotonic() - began)),
            round((_cpu_seconds() - began_cpu) / expected * 1e6, 1),
        )
    finally:
        await consumer.stop()
        await producer.stop()


async def _read_and_send_batches(
    pipe: Pipe,
    producer: AIOKafkaProducer,
    messages: list[ConsumerRecord],
    partition: int,
    written: Sequence[Written] = (),
) -> list[asyncio.Future[RecordMetadata]]:
    """Read each message and append it, or if ``pipe.sized`` the messages of ``written`` in its
    place (by its offset), to record batches for ``partition``; the batches' futures."""
    futures: list[asyncio.Future[RecordMetadata]] = []
    batch = producer.create_batch()
    for message in messages:
        pipe.read(message.value)
        sent = (
            written[message.offset % len(written)] if pipe.sized else [(message.key, message.value)]
        )
        for item in sent:
            batch = await append_or_send(producer, batch, item, (PIPE_OUT, partition), futures)
    futures.append(await producer.send_batch(batch, PIPE_OUT, partition=partition))
    return futures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def expected_runs(events: Sequence[tuple[bytes, bytes]], index: WorkflowIndex) -> tuple[int, int]:
    """Run records and matching events for ``events``, decided by the pure core."""
    runs = matching = 0
    for decided in decided_runs(events, index):
        runs += len(decided)
        matching += bool(decided)
    return runs, matching


class Bench:
    def __init__(self, bootstrap: str, options: Options, workdir: Path) -> None:
        self.bootstrap, self.options, self.workdir = bootstrap, options, workdir
        self.loaded: list[Workflow] = []

    async def load(self, wanted: list[Workflow]) -> None:
        """Make ``wanted`` the workflows on the definitions topic (tombstones for the rest)."""
        keep = {w.id for w in wanted}
        gone = [(w.id.encode(), None) for w in self.loaded if w.id not in keep]
        fresh = [(w.id.encode(), codec.dumps(w)) for w in wanted]
        await publish(self.bootstrap, DEFINITIONS, [*gone, *fresh], f"{len(wanted):,} workflows")
        self.loaded = wanted

    async def processor(
        self,
        start: Offsets,
        events: int,
        expected: int,
        label: str,
        processes: int = 1,
        keep: bool = False,
        roles: str = "processor",
        sampling: Sampling | None = None,
    ) -> tuple[Measured, list[WorkerProcess]]:
        """A worker with ``roles`` (the processor role alone unless told; ``coeflow worker
        --processes processes``) through the ``events`` from ``start``: timed from holding its
        partitions to the ``expected``-th run record; ``sampling`` records the worker from its
        start to that record (one process only)."""
        group = f"bench-{label.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
        await position_worker(self.bootstrap, group, start)
        counter = RunCounter(self.bootstrap, await fences(self.bootstrap, [RUNS]))
        await counter.start()
        started = [
            WorkerProcess(
                self.bootstrap,
                group,
                self.workdir,
                processes=processes,
                COEFLOW_ROLES=roles,
            ).start()
        ]
        try:
            await asyncio.gather(*(w.wait_ready(within=180) for w in started))
            # From here on the workers' CPU is their processing: the definitions are loaded,
            # and waiting for partitions costs next to nothing.
            if sampling is not None:
                assert started[0].process is not None and processes == 1
                await sampling.start(started[0].process.pid)
            began_cpu = sum(w.cpu_seconds() for w in started)
            await _all_hold_partitions(started)
            began = time.monotonic()
            ended = await counter.until(expected, label)
            cpu = sum(w.cpu_seconds() for w in started) - began_cpu
            if sampling is not None:
                await sampling.stop()
            # A worker starts as soon as it holds its partitions, which the poll above sees a
            # little later: the first run record may come before it.
            if counter.first_at is not None:
                began = min(began, counter.first_at)
            measured = Measured(round(events / (ended - began)), round(cpu / events * 1e6, 1))
        except BaseException:
            if sampling is not None:
                await sampling.stop()  # py-spy ended and reaped, whatever was recorded
            for worker in started:
                worker.stop()
            raise
        finally:
            await counter.stop()
        if not keep:
            for worker in started:
                worker.stop()
        return measured, started

    async def every_role(
        self,
        events: Sequence[tuple[bytes, bytes]],
        expected: int,
        label: str,
        latency: tuple[Source, str, float],
    ) -> EveryRole:
        """A worker with every role (as ``coeflow dev`` runs one) given ``events``: its speed
        from the first run record to the last, its CPU an event until its readers of the runs
        it wrote have caught up, how many seconds after the last run record that was, and
        then its latency at ``DEV_LOAD`` events a second (or half its speed, if less) of
        ``latency``'s source (event ids with its prefix, for its seconds).

        The worker is started at the end of the record changes and left to go idle first:
        its run history and tracker read every run record already on the topic when they
        start (all the bench's earlier runs, on a broker that keeps everything), which is a
        start's cost, not an event's. The events then come as whole record batches."""
        group = f"bench-{label.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
        await position_worker(self.bootstrap, group, await fences(self.bootstrap, [RECORD_CHANGES]))
        worker = WorkerProcess(  # with coeflow dev's line per run (at most 20 a second)
            self.bootstrap,
            group,
            self.workdir,
            COEFLOW_ROLES="processor,api,executors",
            COEFLOW_LOG_RUNS="true",
        )
        # The executors (Faust agents of the app id's group) start at the end of the action
        # topics too, not at the commands of every earlier section.
        commands = await fences(self.bootstrap, [action_topic(name) for name in ACTION_TYPES])
        await position_group(self.bootstrap, group, commands)
        try:
            await worker.start().wait_ready(within=180)
            await _all_hold_partitions([worker])
            await _until_idle([worker], within=600)
            counter = RunCounter(self.bootstrap, await fences(self.bootstrap, [RUNS]))
            counter.decided_only = True
            try:
                await counter.start()
                cpu = worker.cpu_seconds()
                await publish_batches(self.bootstrap, RECORD_CHANGES, events)
                ended = await counter.until(expected, label)
                began = counter.first_at or ended
            finally:
                await counter.stop()
            await _until_idle([worker], within=600)
            idle = round(max(time.monotonic() - ended - _IDLE_SAMPLE, 0.0), 1)
            cpu = worker.cpu_seconds() - cpu
            rate = round(len(events) / max(ended - began, 1e-3))
            load = min(DEV_LOAD, rate // 2)
            source, prefix, seconds = latency
            latency_ms = await self.latency(load, seconds, source, f"{prefix}dev")
        finally:
            worker.stop()
        return EveryRole(Measured(rate, round(cpu / len(events) * 1e6, 1)), idle, load, latency_ms)

    async def soak(self, load: float, seconds: float) -> dict[str, Any]:
        """A worker with the processor and api roles (as deployed: its run history and run
        tracker are bounded too) at ``load`` events a second for ``seconds``, from a CRM of
        100 tenants with 500 records of each type (the record state stops growing once all
        are seen), its resident memory sampled every 10 s. Every action it issues is
        completed at once by ``complete_actions`` (what executors and a CRM do, seen from the
        processor), so runs end and the run tracker lets them go, as in a deployment."""
        group = f"bench-soak-{uuid.uuid4().hex[:6]}"
        await position_worker(self.bootstrap, group, await fences(self.bootstrap, [RECORD_CHANGES]))
        commands = await fences(self.bootstrap, [action_topic(name) for name in ACTION_TYPES])
        worker = WorkerProcess(self.bootstrap, group, self.workdir, COEFLOW_ROLES="processor,api")
        await worker.start().wait_ready(within=180)
        completer = asyncio.create_task(complete_actions(self.bootstrap, commands))
        source = EventSource(100, seed=13, records=500)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5, acks=-1)
        await producer.start()
        samples: list[tuple[float, float]] = []
        behind: list[tuple[float, int]] = []
        """(s, events offered but not yet processed): whether the worker keeps up."""
        try:
            sent, rng = 0, random.Random(13)
            began = next_sample = time.monotonic()
            while (elapsed := time.monotonic() - began) < seconds:
                while sent < int(elapsed * load):
                    key, value = source.event(rng, sent, "soak", datetime.now(UTC))
                    await producer.send(RECORD_CHANGES, value, key=key)
                    sent += 1
                if time.monotonic() >= next_sample:
                    samples.append((round(elapsed), round(worker.rss_bytes() / 2**20, 1)))
                    processed = (await worker.health())["processed"]["events"]
                    behind.append((round(elapsed), sent - processed))
                    next_sample += 10
                    progress.show(
                        f"  soak: {elapsed:,.0f}/{seconds:,.0f}s, {sent:,} events, "
                        f"{sent - processed:,} not yet processed, RSS {samples[-1][1]} MB"
                    )
                await asyncio.sleep(0.01)
            await producer.flush()
            await asyncio.sleep(5)  # the last runs complete
            health = await worker.health()
        finally:
            completer.cancel()
            await producer.stop()
            worker.stop()
        tenth = max(len(samples) // 10, 1)

        def mean(part: list[tuple[float, float]]) -> float:
            return round(sum(m for _, m in part) / len(part), 1)

        return {
            "seconds": seconds,
            "load": round(load),
            "events": sent,
            "processed": health["processed"]["events"],
            "runs": health["processed"]["runs"],
            "rss_mb_first_tenth": mean(samples[:tenth]),
            "rss_mb_second_tenth": mean(samples[tenth : 2 * tenth]),
            "rss_mb_last_tenth": mean(samples[-tenth:]),
            "rss_mb_samples": samples,
            "backlog_samples": behind,
        }

    async def latency(
        self, load: float, seconds: float, source: Source, prefix: str
    ) -> dict[str, dict[str, float]]:
        """Percentiles of send → run record and send → action command, offering ``load``
        events a second of ``source`` (event ids ``<prefix>-n``) to the processor running."""
        topics = [RUNS, *(action_topic(name) for name in ACTION_TYPES)]
        counter = RunCounter(self.bootstrap, await fences(self.bootstrap, topics))
        counter.keep_occurred = lambda run: run["event_id"].startswith(f"{prefix}-")
        await counter.start()
        try:
            offered = await offer(self.bootstrap, load, seconds, source, prefix, "latency")
            await asyncio.sleep(5)  # the last commands arrive
        finally:
            await counter.stop()
        sent = {run_id: at.timestamp() for run_id, at in counter.occurred.items()}
        return {
            "run record": {  # "offered": what the samples may fall short of (5 s late, or lost)
                **percentiles(
                    [arrived - sent[run_id] for run_id, arrived in counter.run_arrivals.items()]
                ),
                "offered": offered,
            },
            "action command": percentiles(
                [
                    arrived - sent[run_id]
                    for run_id, arrived in counter.command_arrivals.items()
                    if run_id in sent
                ]
            ),
        }


Source = EventSource | CreatedLeads


async def offer(
    bootstrap: str, load: float, seconds: float, source: Source, prefix: str, label: str
) -> int:
    """Send ``load`` events a second of ``source`` for ``seconds``, each with the time it is
    sent as its ``occurred_at``; how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=-1)
    await producer.start()
    try:
        sent, rng = 0, random.Random(5)
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < seconds:
            while sent < int(elapsed * load):
                key, value = source.event(rng, sent, prefix, datetime.now(UTC))
                await producer.send(RECORD_CHANGES, value, key=key)
                sent += 1
            progress.show(f"  {label}: {sent:,} events at {load:,.0f}/s")
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


_SHOWN = ("p50", "p95", "p99")
"""What the progress lines show of a latency."""


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p95, p99 of ``seconds``, in ms, and how many there were."""
    waits = sorted(s * 1000 for s in seconds)
    if not waits:
        return {}
    pick = lambda q: round(waits[min(int(q * len(waits)), len(waits) - 1)], 1)  # noqa: E731
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "samples": len(waits)}


def _pipe_forever(bootstrap: str, start: list[tuple[str, int, int]], ready: ProcessEvent) -> None:
    """The plain pipe in a process of its own (as the processor has), from ``start`` on,
    until killed; reads as the workers read (``COEFLOW_FETCH_WAIT``)."""

    async def pipe() -> None:
        consumer = prompt_consumer(bootstrap)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=1 << 20, acks=-1
        )
        await consumer.start()
        await producer.start()
        read_from(consumer, {TopicPartition(t, p): offset for t, p, offset in start})
        out = sorted(await producer.partitions_for(PIPE_OUT))
        await consumer.getmany(timeout_ms=100)
        ready.set()
        while True:
            pending: list[asyncio.Future[RecordMetadata]] = []
            for tp, messages in (await consumer.getmany(timeout_ms=200, max_records=2000)).items():
                messages = [m for m in messages if m.value is not None]  # fences
                if messages:
                    partition = out[tp.partition % len(out)]
                    pending += await _read_and_send_batches(PLAIN, producer, messages, partition)
            await asyncio.gather(*pending)

    asyncio.run(pipe())


async def plain_hop(
    bootstrap: str, load: float, seconds: float, source: Source, prefix: str
) -> dict[str, float]:
    """Percentiles of send → read back through the plain pipe, in a process of its own,
    at ``load`` events a second: what one hop through this broker costs, measured the way
    ``Bench.latency`` measures the processor."""
    start = await fences(bootstrap, [RECORD_CHANGES])
    out_start = await fences(bootstrap, [PIPE_OUT])
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    piping = context.Process(
        target=_pipe_forever,
        args=(bootstrap, [(tp.topic, tp.partition, o) for tp, o in start.items()], ready),
        daemon=True,
    )
    piping.start()
    reader = prompt_consumer(bootstrap)
    await reader.start()
    arrivals: list[float] = []

    async def read() -> None:
        while True:
            batches = await reader.getmany(timeout_ms=100, max_records=10_000)
            now = time.time()
            for messages in batches.values():
                for message in messages:
                    if message.value is None:
                        continue
                    event = orjson.loads(message.value)
                    if event["event_id"].startswith(f"{prefix}-"):
                        sent = datetime.fromisoformat(event["occurred_at"]).timestamp()
                        arrivals.append(now - sent)

    try:
        read_from(reader, out_start)
        reading = asyncio.create_task(read())
        while not ready.is_set():
            if not piping.is_alive():
                raise RuntimeError("the plain pipe's process ended")
            await asyncio.sleep(0.1)
        await offer(bootstrap, load, seconds, source, prefix, "plain hop")
        await asyncio.sleep(3)
        reading.cancel()
    finally:
        piping.kill()
        piping.join()
        await reader.stop()
    return percentiles(arrivals)


_IDLE_SAMPLE = 1.0
"""Seconds over which ``_until_idle`` measures a worker's CPU."""


async def _until_idle(workers: Sequence[WorkerProcess], within: float = 120.0) -> None:
    """Until ``workers`` use under a tenth of a core (their readers have caught up), so that
    a latency measured next is not a backlog's."""
    deadline = time.monotonic() + within
    before = sum(w.cpu_seconds() for w in workers)
    while time.monotonic() < deadline:
        await asyncio.sleep(_IDLE_SAMPLE)
        now = sum(w.cpu_seconds() for w in workers)
        if now - before < 0.1:
            return
        before = now
        progress.show("  waiting for the worker to go idle")
    raise RuntimeError(f"the worker was still busy after {within:.0f}s")


async def _all_hold_partitions(workers: Sequence[WorkerProcess], within: float = 120.0) -> None:
    """Until the group's partitions are shared out among all ``workers`` (each process)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        held = [
            len((await w.health(n))["record_change_partitions"])
            for w in workers
            for n in range(w.processes)
        ]
        if all(held):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the workers did not share the partitions out")


@dataclass(frozen=True)
class Workload:
    name: str
    workflows: list[Workflow]
    source: Source
    prefix: str
    """Event ids of the workload's latency events start with ``<prefix>-``."""
    pipes: tuple[Pipe, ...]


def workloads_of(options: Options) -> list[Workload]:
    made = {
        MIXED: Workload(
            MIXED,
            workflows(options.workflows, options.tenants),
            EventSource(options.tenants),
            "lat",
            PIPES,
        ),
        EVERY_EVENT: Workload(
            EVERY_EVENT,
            every_event_workflows(options.tenants),
            CreatedLeads(options.tenants),
            "latc",
            (PLAIN, SIZED),
        ),
    }
    return [made[name] for name in options.workloads]


async def profile_worker(
    bench: Bench,
    start: Offsets,
    events: int,
    runs: int,
    name: str,
    options: Options,
    mine: WorkloadFigures,
) -> None:
    """One more pass of the processor role alone, sampled by py-spy (``bench/worker_profile.py``):
    the worker's CPU an event by stage, into ``mine``. Not one of the rounds: sampling costs the
    machine a little, and the rounds are the figures of speed."""
    sampling = Sampling(
        options.output / f"worker-profile-{name.replace(' ', '-')}.txt", options.profile_rate
    )
    measured, _ = await bench.processor(start, events, runs, f"{name} profiled", sampling=sampling)
    stage_shares, samples = shares(sampling.raw)
    mine.worker_profile_samples = samples
    mine.worker_profile_error = sampling.error
    if stage_shares:
        mine.worker_cpu_us_by_stage = us_by_stage(stage_shares, measured.cpu_us)
        progress.done(
            f"{name}: the worker's own CPU µs an event by stage, from {samples:,} samples of it "
            f"(py-spy; {measured.cpu_us} µs an event in that pass): "
            + ", ".join(f"{stage} {us}" for stage, us in mine.worker_cpu_us_by_stage.items())
        )
    else:
        progress.done(f"{name}: no profile of the worker ({mine.worker_profile_error})")


async def measure_workload(
    bench: Bench, workload: Workload, options: Options, mine: WorkloadFigures
) -> None:
    """Every figure of ``workload`` into ``mine``."""
    name = workload.name
    progress.show(f"{name}: generating the workload")
    events = list(workload.source.events(options.events))
    index = index_of(workload.workflows)
    mine.workflows, mine.events = len(workload.workflows), len(events)
    mine.event_bytes = round(sum(len(v) for _, v in events) / len(events), 1)
    with as_in_a_worker():  # not the bench's own heap walked by its collector
        began = time.process_time()
        runs, matching = expected_runs(events, index)
        mine.core_events_per_second = round(len(events) / (time.process_time() - began))
    mine.matching_share = round(matching / len(events), 4)
    mine.runs_expected = runs
    progress.done(
        f"{name}: {len(workload.workflows):,} workflows, {len(events):,} events of "
        f"{mine.event_bytes:.0f} bytes, {mine.matching_share:.1%} matching, {runs:,} run "
        f"records expected; the pure core alone: {mine.core_events_per_second:,} events/s"
    )
    profiled = events[: options.stage_events]
    written = outputs_by_event(profiled, index) if SIZED in workload.pipes else []
    compression = Settings().compression  # the workers', from the same environment
    await bench.load(workload.workflows)
    start = await publish(bench.bootstrap, RECORD_CHANGES, events, f"{name} events")
    kept: list[WorkerProcess] = []
    for n in range(1, options.rounds + 1):
        for pipe in workload.pipes:
            measured = await plain_pipe(
                bench.bootstrap, start, len(events), pipe, written, compression
            )
            mine.pipe_rounds.setdefault(pipe.name, []).append(measured)
            progress.done(f"{name}, round {n}: pipe, {pipe.name}: {_shown(measured)}")
        last = n == options.rounds  # its worker stays for the latency
        measured, kept = await bench.processor(
            start, len(events), runs, f"{name} processor {n}", keep=last
        )
        mine.processor_rounds.append(measured)
        progress.done(f"{name}, round {n}: processor role alone, one process: {_shown(measured)}")
    best_round = max(mine.processor_rounds, key=lambda m: m.events_per_second)
    mine.processor_events_per_second = best = best_round.events_per_second
    mine.processor_cpu_us = best_round.cpu_us
    for pipe_name, rounds in mine.pipe_rounds.items():
        mine.pipe_events_per_second[pipe_name] = _best(rounds)
        mine.ratio[pipe_name] = round(best / mine.pipe_events_per_second[pipe_name], 3)
    progress.done(
        f"{name}: (a) plain pipe {mine.pipe_events_per_second[PLAIN.name]:,} events/s; "
        f"(b) processor role alone (the goal's figure), one process, {best:,} events/s; "
        f"b/a {mine.ratio[PLAIN.name]:.0%} "
        f"(best of {options.rounds} rounds each"
        + "".join(f"; to {p} {r:.0%}" for p, r in mine.ratio.items() if p != PLAIN.name)
        + ")"
    )

    if options.profile_rate:
        await profile_worker(bench, start, len(events), runs, name, options, mine)

    mine.output_bytes_per_event = output_bytes(profiled, index)
    mine.cpu_us_by_stage = core_stages(profiled, index)
    if workload.name == EVERY_EVENT:
        mine.bare_and_core_us = bare_and_core(profiled, workload.workflows)
        progress.done(
            f"{name}: the least Python that writes the core's outputs, "
            f"{mine.bare_and_core_us['bare']} µs an event, beside the core's "
            f"{mine.bare_and_core_us['core']} (medians of alternated passes in this process)"
        )
    producers = {  # batches are only built, never sent: none is started
        codec: AIOKafkaProducer(
            bootstrap_servers=bench.bootstrap,
            compression_type=producer_codec(codec),
            max_batch_size=MAX_BATCH_BYTES,
        )
        for codec in CODECS
    }
    try:
        mine.cpu_us_by_stage["send"] = send_us(profiled, index, producers[compression])
        mine.codec_costs = codec_costs(profiled, index, producers.__getitem__)
    finally:
        for producer in producers.values():
            await producer.stop()  # never started: only marks it closed
    accounted = mine.cpu_us_by_stage["core"] + mine.cpu_us_by_stage["send"]
    mine.cpu_us_by_stage["worker beyond these"] = round(
        max(mine.processor_cpu_us - accounted, 0.0), 2
    )
    progress.done(
        f"{name}: CPU µs an event: "
        + ", ".join(f"{stage} {us}" for stage, us in mine.cpu_us_by_stage.items())
        + f" (the worker's measured: {mine.processor_cpu_us}); "
        f"{mine.output_bytes_per_event:,.0f} bytes written an event "
        f"(the pipe: {mine.event_bytes:,.0f}); by codec, µs an event to build the batches and "
        "their bytes an event: "
        + ", ".join(f"{c} {v['us']} µs {v['bytes']:,.0f} B" for c, v in mine.codec_costs.items())
    )

    mine.offered_load = round(options.latency_load or best / 2)
    try:
        await _until_idle(kept)  # it has caught up with the backlog
        mine.latency_ms = await bench.latency(
            mine.offered_load, options.latency_seconds, workload.source, workload.prefix
        )
        mine.peak_rss_mb = round(sum(w.peak_rss_bytes() for w in kept) / 2**20, 1)
    finally:
        for worker in kept:
            worker.stop()  # the hop's pipe has the machine to itself, as the processor had
    mine.latency_ms["plain hop"] = await plain_hop(
        bench.bootstrap,
        mine.offered_load,
        options.latency_seconds,
        workload.source,
        f"hop{workload.prefix}",
    )
    hop = mine.latency_ms["plain hop"].get("p99")
    for what in ("run record", "action command"):
        p99 = mine.latency_ms[what].get("p99")
        if hop and p99 is not None:
            mine.p99_to_hop[what] = round(p99 / hop, 2)
    progress.done(
        f"{name}: latency at {mine.offered_load:,} events/s: "
        + "; ".join(
            f"{what} " + ", ".join(f"{k} {v:,} ms" for k, v in values.items() if k in _SHOWN)
            for what, values in mine.latency_ms.items()
        )
        + " (p99 over the hop's: "
        + ", ".join(f"{what} {ratio}" for what, ratio in mine.p99_to_hop.items())
        + ")"
    )

    measured, _ = await bench.processor(
        start, len(events), runs, f"{name} two processes", processes=2
    )
    mine.two_processes_events_per_second = measured.events_per_second
    mine.two_processes_cpu_us = measured.cpu_us
    mine.scaling_factor = round(measured.events_per_second / best, 2)
    progress.done(
        f"{name}: coeflow worker --processes 2: {_shown(measured)} (x{mine.scaling_factor})"
    )

    if name != EVERY_EVENT:
        return  # its actions go to executors with no peers here (SMTP, Slack): not coeflow dev's
    fresh = list(workload.source.events(options.events, prefix=f"{workload.prefix}-role"))
    fresh_runs, _ = expected_runs(fresh, index)
    role = await bench.every_role(
        fresh,
        fresh_runs,
        f"{name} every role",
        (workload.source, workload.prefix, options.latency_seconds),
    )
    mine.every_role_events_per_second = role.measured.events_per_second
    mine.every_role_cpu_us = role.measured.cpu_us
    mine.every_role_catch_up_seconds = role.catch_up_seconds
    mine.every_role_load, mine.every_role_latency_ms = role.load, role.latency_ms
    progress.done(
        f"{name}: every role in one worker (as coeflow dev runs): "
        f"{role.measured.events_per_second:,} events/s from the first run record to the last, "
        f"its readers caught up {role.catch_up_seconds} s later; {role.measured.cpu_us} µs of "
        f"CPU an event in all; latency at {role.load:,} events/s: "
        + "; ".join(
            f"{what} " + ", ".join(f"{k} {v:,} ms" for k, v in values.items() if k in _SHOWN)
            for what, values in role.latency_ms.items()
        )
    )


async def run(options: Options, bootstrap: str, workdir: Path) -> Figures:
    figures = Figures(machine=_machine(), options=_plain(asdict(options)))
    settings = Settings(kafka_bootstrap=bootstrap)
    await ensure_topics(settings)
    pipe_out = TopicSpec(PIPE_OUT, settings.partitions)  # as many partitions as the changes
    await create_missing(settings, [pipe_out])
    bench = Bench(bootstrap, options, workdir)
    if options.only_backtest:
        figures.backtest = await backtest_section(bootstrap, options, workdir)
        return figures

    for workload in workloads_of(options):
        mine = figures.workloads[workload.name] = WorkloadFigures()
        await measure_workload(bench, workload, options, mine)

    scale_tenants = 100
    base = workflows(scale_tenants, scale_tenants)
    scale_events = list(EventSource(scale_tenants, seed=3).events(options.scale_events, prefix="s"))
    scale_runs, _ = expected_runs(scale_events, index_of(base))
    scale_start = await publish(bootstrap, RECORD_CHANGES, scale_events, "scaling events")
    for count in options.scale_workflows:
        await bench.load(base + unrelated_workflows(max(count - len(base), 0), scale_tenants))
        measured, _ = await bench.processor(
            scale_start, len(scale_events), scale_runs, f"{count} workflows"
        )
        figures.by_workflow_count[str(count)] = measured.events_per_second
        progress.done(f"{count:,} workflows: {figures.by_workflow_count[str(count)]:,} events/s")
    if options.backtest_history:
        figures.backtest = await backtest_section(bootstrap, options, workdir)
    if options.soak_seconds:
        await bench.load(workflows(options.workflows, options.tenants))
        mixed = figures.workloads.get(MIXED)
        load = options.soak_load or (mixed.processor_events_per_second / 2 if mixed else 1000)
        figures.soak = await bench.soak(load, options.soak_seconds)
        progress.done(
            f"soak: {figures.soak['events']:,} events over {options.soak_seconds:,.0f}s at "
            f"{figures.soak['load']:,}/s, {figures.soak['processed']:,} processed; "
            f"processor RSS {figures.soak['rss_mb_first_tenth']} "
            f"MB in the first tenth, {figures.soak['rss_mb_second_tenth']} MB in the second, "
            f"{figures.soak['rss_mb_last_tenth']} MB in the last; runs {figures.soak['runs']}"
        )
    return figures


def _not_negative(text: str) -> int:
    number = int(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative")
    return number


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not 1 or more")
    return number


async def backtest_section(bootstrap: str, options: Options, workdir: Path) -> BacktestFigures:
    measured = await measure_backtest(
        bootstrap, workdir, options.backtest_history, options.backtest_live, options.rounds
    )
    progress.done(
        f"backtest over {measured.history_events:,} events: live alone "
        f"{measured.live_alone_events_per_second:,} events/s, during a backtest "
        f"{measured.live_during_backtest_events_per_second:,} "
        f"(x{measured.live_during_to_alone}, within a round x"
        f"{measured.live_during_to_alone_median} the median; overlap {measured.overlap}); "
        "the backtest "
        f"{measured.backtest_events_per_second:,} events/s "
        f"({measured.backtest_messages_per_second:,} messages/s, {measured.backtest_seconds} s), "
        f"alone {measured.backtest_alone_events_per_second:,} events/s; "
        f"the pure fold {measured.fold_events_per_second:,} events/s in memory, "
        f"{measured.fold_with_decode_events_per_second:,} from bytes"
    )
    return measured


def _shown(measured: Measured) -> str:
    return f"{measured.events_per_second:,} events/s, {measured.cpu_us} µs of CPU an event"


def _best(rounds: list[Measured]) -> int:
    return max(measured.events_per_second for measured in rounds)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def chart(figures: Figures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 5.5))
    names: list[str] = []
    values: list[float] = []
    colours: list[str] = []
    for workload, mine in figures.workloads.items():
        short = workload.replace("every event runs", "every event")
        for pipe, rate in mine.pipe_events_per_second.items():
            names.append(f"{short}: pipe, {pipe}")
            values.append(rate)
            colours.append("#999999")
        names += [f"{short}: processor", f"{short}: processor ×2"]
        values += [mine.processor_events_per_second, mine.two_processes_events_per_second]
        colours += ["#2f6db5", "#5b9be0"]
        if mine.every_role_events_per_second:
            names.append(f"{short}: every role (coeflow dev)")
            values.append(mine.every_role_events_per_second)
            colours.append("#8bb8e8")
    left.bar(names, values, color=colours)
    left.tick_params(axis="x", labelsize=7, labelrotation=60)
    left.set_ylabel("events per second")
    left.set_title("Throughput on one broker")
    kinds = ("plain hop", "run record", "action command")
    width = 0.8 / max(len(figures.workloads), 1)
    for n, (workload, mine) in enumerate(figures.workloads.items()):
        p99s = [mine.latency_ms.get(kind, {}).get("p99", 0.0) for kind in kinds]
        middle.bar([k + n * width for k in range(len(kinds))], p99s, width, label=workload)
    middle.set_xticks([k + width * (len(figures.workloads) - 1) / 2 for k in range(len(kinds))])
    middle.set_xticklabels(kinds)
    middle.set_ylabel("p99, ms (send → read back)")
    middle.set_title("Latency at half the maximum")
    middle.legend()
    counts = list(figures.by_workflow_count)
    right.plot(counts, [figures.by_workflow_count[c] for c in counts], marker="o")
    right.set_ylim(bottom=0)
    right.set_xlabel("active workflows")
    right.set_title("Processor throughput by workflow count (mixed)")
    fig.suptitle(f"coeflow bench, {figures.machine['cpus']} CPUs, {figures.machine['when']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="coeflow bench", description=__doc__.split("\n")[0])
    defaults = Options()
    parser.add_argument("--workflows", type=int, default=defaults.workflows)
    parser.add_argument("--tenants", type=int, default=defaults.tenants)
    parser.add_argument(
        "--events", type=int, default=defaults.events, help="events of each workload"
    )
    parser.add_argument(
        "--workloads",
        type=lambda text: tuple(name.strip().replace("-", " ") for name in text.split(",")),
        default=defaults.workloads,
        help="comma-separated, of: mixed, every-event-runs (default both)",
    )
    parser.add_argument("--scale-events", type=int, default=defaults.scale_events)
    parser.add_argument(
        "--scale-workflows",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=defaults.scale_workflows,
        help="comma-separated workflow counts (default 100,10000,100000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="rounds of the pipes and the processor, alternating; each reports its best",
    )
    parser.add_argument("--latency-seconds", type=float, default=defaults.latency_seconds)
    parser.add_argument(
        "--latency-load",
        type=float,
        default=defaults.latency_load,
        help="events a second offered for the latency (default: half the processor's "
        "measured maximum on each workload)",
    )
    parser.add_argument(
        "--stage-events",
        type=_positive,
        default=defaults.stage_events,
        help="events of each workload the pure core is profiled over, by stage",
    )
    parser.add_argument(
        "--profile-rate",
        type=_not_negative,
        default=defaults.profile_rate,
        help="samples a second of a pass of the processor worker profiled by py-spy, for its "
        "own CPU by stage (0: no such pass)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=defaults.soak_seconds,
        help="after the measurements, run a processor at half its maximum (mixed) this long "
        "and report its memory (make soak: 1800)",
    )
    parser.add_argument(
        "--soak-load",
        type=float,
        default=defaults.soak_load,
        help="events a second in the soak (default: half the processor's measured maximum "
        "on the mixed workload)",
    )
    parser.add_argument(
        "--backtest-history",
        type=_not_negative,
        default=defaults.backtest_history,
        help="a tenant's record changes the backtest section replays (0: no backtest section)",
    )
    parser.add_argument(
        "--backtest-live",
        type=_not_negative,
        default=defaults.backtest_live,
        help="live events of each round beside the backtest",
    )
    parser.add_argument(
        "--only-backtest",
        action="store_true",
        help="run the backtest section alone (what a backtest costs live processing)",
    )
    parser.add_argument("--output", type=Path, default=defaults.output)
    args = parser.parse_args(argv)
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    options = Options(**{k: v for k, v in vars(args).items()})
    options.output.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    workdir = options.output / "work"
    if settings.kafka_bootstrap is not None:
        figures = asyncio.run(run(options, settings.bootstrap, workdir))
    else:
        with EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log") as broker:
            progress.done(f"embedded broker (Tansu) on {broker.bootstrap}")
            figures = asyncio.run(run(options, broker.bootstrap, workdir))
    if options.only_backtest:  # the full run's figures stay as they are
        path = options.output / "bench-backtest.json"
        path.write_text(json.dumps(asdict(figures), indent=2) + "\n")
        print(f"figures: {path}")
        return 0
    (options.output / "bench.json").write_text(json.dumps(asdict(figures), indent=2) + "\n")
    chart(figures, options.output / "bench.png")
    print(f"figures: {options.output / 'bench.json'}, chart: {options.output / 'bench.png'}")
    return 0

"""``coeflow bench``: how fast the processor is, next to the physical limit of this machine.

One broker for the whole run (an embedded Tansu, or ``COEFLOW_KAFKA_BOOTSTRAP``). Each
scenario publishes its events, notes where they begin in each partition (from the broker's own
answers to the sends, so Tansu's wrong end offsets do not matter), deletes the workflows of
the scenario before and publishes its own, and starts its consumers exactly there:

1. the plain pipe: aiokafka ``getmany`` → one orjson parse per event → the events sent on as
   record batches (as the processor sends), no matching; the most any processor can do on
   this broker and machine. Next to it two variants (``PIPES``): one ``send`` per event (the
   usual way to write a pipe, about 2.5 times the CPU), and validation into ``ChangeEvent``
   instead of the parse (what the contract's schema alone costs a processor);
2. the processor: ``coeflow worker`` processes (processor role only) in a fresh consumer
   group, timed from the moment they hold their partitions to the last expected run record
   (the pure core, run here over the same events, says how many to expect);
   (1 and 2 alternate for ``--rounds`` rounds, and each reports its best round: this machine's
   speed drifts from minute to minute, and the best round of each is the least disturbed;
   every round is kept in the figures);
3. the latency from ``occurred_at`` to the action command, at half the measured throughput;
4. the processor with 100, 10,000 and 100,000 workflows (the extra ones belong to tenants no
   event touches), and with two workers in one group.

Figures go to ``bench-results/bench.json`` and a chart to ``bench-results/bench.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from actions.registry import REGISTRY as ACTION_TYPES
from bench.workload import (
    EventSource,
    decided_runs,
    index_of,
    unrelated_workflows,
    workflows,
)
from coeflow.settings import Settings
from coeflow.tools.broker import EmbeddedBroker, free_port
from coeflow.tools.processes import WorkerProcess
from processor.changes import ChangeProcessor
from processor.core.index import WorkflowIndex
from processor.replica import write_fences
from processor.run_tracker import RunTracker
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
Offsets = dict[TopicPartition, int]


@dataclass(frozen=True)
class Pipe:
    """A plain pipe: how it reads each event, and how it sends the events on."""

    name: str
    read: Callable[[bytes], object]
    send_per_event: bool = False
    """One ``producer.send`` per event, batched by the producer (linger 5 ms), instead of
    record batches built whole (``create_batch`` / ``send_batch``, as the processor sends)."""


PLAIN = Pipe("plain", orjson.loads)
"""(a): the physical limit, which the goal measures the processor against."""
PIPES = (
    PLAIN,
    # The benchmark's plain pipe until 2026-11-26: a send costs a coroutine, a future and the
    # producer's bookkeeping per event.
    Pipe("send per event", orjson.loads, send_per_event=True),
    Pipe("validating", ChangeEvent.model_validate_json),
)


@dataclass(frozen=True)
class Measured:
    events_per_second: int
    cpu_us: float
    """CPU time an event in µs: the benchmark's own for a pipe, the workers' for a processor."""


@dataclass
class Options:
    workflows: int = 10_000
    tenants: int = 1_000
    events: int = 200_000
    scale_events: int = 50_000
    scale_workflows: tuple[int, ...] = (100, 10_000, 100_000)
    rounds: int = 3
    """Rounds of the pipes and the processor, alternating; each reports its best."""
    latency_seconds: float = 20.0
    soak_seconds: float = 0.0
    soak_load: float = 0.0
    """Events a second in the soak; 0: half the processor's measured maximum."""
    output: Path = Path("bench-results")


@dataclass
class Figures:
    machine: dict[str, Any]
    options: dict[str, Any]
    event_bytes: float = 0.0
    matching_share: float = 0.0
    core_events_per_second: float = 0.0
    pipe_events_per_second: dict[str, int] = field(default_factory=dict)
    """The best round of each of ``PIPES``, by name."""
    processor_events_per_second: int = 0
    ratio: dict[str, float] = field(default_factory=dict)
    """Processor / pipe, best round to best round, by pipe; ``ratio["plain"]`` is the goal's."""
    pipe_rounds: dict[str, list[Measured]] = field(default_factory=dict)
    processor_rounds: list[Measured] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    offered_load: float = 0.0
    peak_rss_mb: float = 0.0
    by_workflow_count: dict[str, float] = field(default_factory=dict)
    two_workers_events_per_second: float = 0.0
    scaling_factor: float = 0.0
    soak: dict[str, Any] = field(default_factory=dict)


class Progress:
    """Progress on stderr (one line rewritten on a terminal, a line every few seconds
    elsewhere); results on stdout."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, text: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\033[K{text}")
        elif time.monotonic() - self._last >= 5:
            sys.stderr.write(f"{text}\n")
        else:
            return
        self._last = time.monotonic()
        sys.stderr.flush()

    def done(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(text, flush=True)


progress = Progress()


async def publish(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes | None]], label: str
) -> Offsets:
    """Send ``messages``; the first offset each partition got."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, acks=-1
    )
    await producer.start()
    first: Offsets = {}
    try:
        pending: list[asyncio.Future[RecordMetadata]] = []
        for sent, (key, value) in enumerate(messages, 1):
            pending.append(await producer.send(topic, key=key, value=value))
            if len(pending) >= 5_000:
                _note_first(first, await asyncio.gather(*pending))
                pending.clear()
                progress.show(f"  {label}: {sent:,} published")
        _note_first(first, await asyncio.gather(*pending))
    finally:
        await producer.stop()
    return first


def _note_first(first: Offsets, sent: Sequence[RecordMetadata]) -> None:
    for meta in sent:
        tp = TopicPartition(meta.topic, meta.partition)
        if tp not in first or meta.offset < first[tp]:
            first[tp] = meta.offset


async def fences(bootstrap: str, topics: Iterable[str]) -> Offsets:
    """Where a reader of ``topics`` starts to see only what is written from now on: just past
    a fence appended to every partition (exact on any broker, unlike end offsets)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
    await producer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(await producer.partitions_for(topic))
        ]
        stored = await write_fences(producer, partitions)
    finally:
        await producer.stop()
    return {tp: offset + 1 for tp, offset in stored.items()}


def read_from(consumer: AIOKafkaConsumer, start: Offsets) -> None:
    """Have ``consumer`` read exactly the partitions of ``start``, each from its offset."""
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)


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


async def position_group(bootstrap: str, group: str, start: Offsets) -> None:
    """Commit ``start`` for ``group`` before any member joins, so it begins exactly there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(start))
        await consumer.commit(dict(start))
    finally:
        await consumer.stop()


async def position_worker(bootstrap: str, app_id: str, changes: Offsets) -> None:
    """Start app ``app_id``'s record-change processors at ``changes``, and its run tracker
    where its inputs end now: the runs of earlier phases are not this phase's work."""
    await position_group(bootstrap, f"{app_id}-{ChangeProcessor.name}", changes)
    tracked = await fences(bootstrap, RunTracker.topics)
    await position_group(bootstrap, f"{app_id}-{RunTracker.name}", tracked)


async def plain_pipe(bootstrap: str, start: Offsets, expected: int, pipe: Pipe = PLAIN) -> Measured:
    """Consume → read each event → produce, doing nothing else; the events go on as record
    batches, one or more per input partition, unless ``pipe.send_per_event``."""
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
        max_batch_size=1 << 20,
        acks=-1,
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
                    pending += await _read_and_send_batches(pipe, producer, messages, partition)
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
    pipe: Pipe, producer: AIOKafkaProducer, messages: list[ConsumerRecord], partition: int
) -> list[asyncio.Future[RecordMetadata]]:
    """Read each message and append it to record batches for ``partition``; the batches'
    futures."""
    futures = []
    batch = producer.create_batch()
    for message in messages:
        pipe.read(message.value)
        if batch.append(key=message.key, value=message.value, timestamp=None) is None:
            futures.append(await producer.send_batch(batch, PIPE_OUT, partition=partition))
            batch = producer.create_batch()
            batch.append(key=message.key, value=message.value, timestamp=None)
    futures.append(await producer.send_batch(batch, PIPE_OUT, partition=partition))
    return futures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RunCounter:
    """Reads ``workflow.runs`` (and the action topics) from ``start`` in the background."""

    def __init__(self, bootstrap: str, start: Offsets) -> None:
        self.bootstrap, self.start_at = bootstrap, start
        self.runs = 0
        self.first_at: float | None = None
        """When the first run record was read (``time.monotonic()``)."""
        self.occurred: dict[str, datetime] = {}
        self.command_arrivals: dict[str, float] = {}
        self.keep_occurred: Callable[[dict[str, Any]], bool] = lambda run: False
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        read_from(consumer, self.start_at)
        self._task = asyncio.create_task(self._read(consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.time()
            for tp, messages in batches.items():
                messages = [m for m in messages if m.value is not None]  # fences
                if tp.topic == RUNS:
                    for message in messages:
                        self.runs += 1
                        if self.first_at is None:
                            self.first_at = time.monotonic()
                        run = orjson.loads(message.value)
                        if self.keep_occurred(run):
                            self.occurred[run["run_id"]] = datetime.fromisoformat(
                                run["occurred_at"]
                            )
                else:
                    for message in messages:
                        run_id = orjson.loads(message.value)["run_id"]
                        self.command_arrivals.setdefault(run_id, now)

    async def until(self, count: int, label: str, within: float = 900.0) -> float:
        deadline = time.monotonic() + within
        while self.runs < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: only {self.runs:,} of {count:,} run records")
            progress.show(f"  {label}: {self.runs:,}/{count:,} run records")
            await asyncio.sleep(0.1)
        return time.monotonic()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()


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
        workers: int = 1,
        keep: bool = False,
    ) -> tuple[Measured, list[WorkerProcess]]:
        """``workers`` processor workers through the ``events`` from ``start``: timed from
        holding their partitions to the ``expected``-th run record."""
        group = f"bench-{label.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
        await position_worker(self.bootstrap, group, start)
        counter = RunCounter(self.bootstrap, await fences(self.bootstrap, [RUNS]))
        await counter.start()
        started = [
            WorkerProcess(
                self.bootstrap,
                group,
                self.workdir,
                COEFLOW_ROLES="processor",
            ).start()
            for _ in range(workers)
        ]
        try:
            await asyncio.gather(*(w.wait_ready(within=180) for w in started))
            # From here on the workers' CPU is their processing: the definitions are loaded,
            # and waiting for partitions costs next to nothing.
            began_cpu = sum(w.cpu_seconds() for w in started)
            await _all_hold_partitions(started)
            began = time.monotonic()
            ended = await counter.until(expected, label)
            cpu = sum(w.cpu_seconds() for w in started) - began_cpu
            # A worker starts as soon as it holds its partitions, which the poll above sees a
            # little later: the first run record may come before it.
            if counter.first_at is not None:
                began = min(began, counter.first_at)
            measured = Measured(round(events / (ended - began)), round(cpu / events * 1e6, 1))
        except BaseException:
            for worker in started:
                worker.stop()
            raise
        finally:
            await counter.stop()
        if not keep:
            for worker in started:
                worker.stop()
        return measured, started

    async def soak(self, load: float, seconds: float) -> dict[str, Any]:
        """A processor at ``load`` events a second for ``seconds``, from a CRM of 100 tenants
        with 500 records of each type (the record state stops growing once all are seen),
        its resident memory sampled every 10 s. Every action it issues is completed at once by
        ``complete_actions`` (what executors and a CRM do, seen from the processor), so runs
        end and the run tracker lets them go, as in a deployment."""
        group = f"bench-soak-{uuid.uuid4().hex[:6]}"
        await position_worker(self.bootstrap, group, await fences(self.bootstrap, [RECORD_CHANGES]))
        commands = await fences(self.bootstrap, [action_topic(name) for name in ACTION_TYPES])
        worker = WorkerProcess(self.bootstrap, group, self.workdir, COEFLOW_ROLES="processor")
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

    async def latency(self, load: float, seconds: float) -> dict[str, float]:
        """Percentiles of occurred_at → action command, offering ``load`` events a second."""
        topics = [RUNS, *(action_topic(name) for name in ACTION_TYPES)]
        counter = RunCounter(self.bootstrap, await fences(self.bootstrap, topics))
        counter.keep_occurred = lambda run: run["event_id"].startswith("lat-")
        await counter.start()
        source = EventSource(self.options.tenants, seed=11)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=1, acks=-1)
        await producer.start()
        try:
            sent, rng = 0, random.Random(5)
            began = time.monotonic()
            while (elapsed := time.monotonic() - began) < seconds:
                while sent < int(elapsed * load):
                    key, value = source.event(rng, sent, "lat", datetime.now(UTC))
                    await producer.send(RECORD_CHANGES, value, key=key)
                    sent += 1
                progress.show(f"  latency: {sent:,} events at {load:,.0f}/s")
                await asyncio.sleep(0.01)
            await producer.flush()
            await asyncio.sleep(5)  # the last commands arrive
        finally:
            await producer.stop()
            await counter.stop()
        waits = sorted(
            (arrived - counter.occurred[run_id].timestamp()) * 1000
            for run_id, arrived in counter.command_arrivals.items()
            if run_id in counter.occurred
        )
        if not waits:
            return {}
        pick = lambda q: round(waits[min(int(q * len(waits)), len(waits) - 1)], 1)  # noqa: E731
        return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "samples": len(waits)}


async def _all_hold_partitions(workers: Sequence[WorkerProcess], within: float = 120.0) -> None:
    """Until the group's partitions are shared out among all ``workers``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        held = [len((await w.health())["record_change_partitions"]) for w in workers]
        if all(held):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the workers did not share the partitions out")


async def run(options: Options, bootstrap: str, workdir: Path) -> Figures:
    figures = Figures(machine=_machine(), options=_plain(asdict(options)))
    settings = Settings(kafka_bootstrap=bootstrap)
    await ensure_topics(settings)
    pipe_out = TopicSpec(PIPE_OUT, settings.partitions)  # as many partitions as the changes
    await create_missing(settings, [pipe_out])
    bench = Bench(bootstrap, options, workdir)

    progress.show("generating the workload")
    main = workflows(options.workflows, options.tenants)
    events = list(EventSource(options.tenants).events(options.events))
    figures.event_bytes = round(sum(len(v) for _, v in events) / len(events), 1)
    began = time.monotonic()
    runs, matching = expected_runs(events, index_of(main))
    figures.core_events_per_second = round(len(events) / (time.monotonic() - began))
    figures.matching_share = round(matching / len(events), 4)
    progress.done(
        f"workload: {len(main):,} workflows over {options.tenants:,} tenants, "
        f"{len(events):,} events of {figures.event_bytes:.0f} bytes, "
        f"{figures.matching_share:.1%} matching, {runs:,} run records expected; "
        f"the pure core alone: {figures.core_events_per_second:,} events/s"
    )

    await bench.load(main)
    start = await publish(bootstrap, RECORD_CHANGES, events, "events")
    kept: list[WorkerProcess] = []
    for n in range(1, options.rounds + 1):
        for pipe in PIPES:
            measured = await plain_pipe(bootstrap, start, len(events), pipe)
            figures.pipe_rounds.setdefault(pipe.name, []).append(measured)
            progress.done(f"round {n}: pipe, {pipe.name}: {_shown(measured)}")
        last = n == options.rounds  # its worker stays for the latency
        measured, kept = await bench.processor(
            start, len(events), runs, f"processor {n}", keep=last
        )
        figures.processor_rounds.append(measured)
        progress.done(f"round {n}: processor, one worker: {_shown(measured)}")
    figures.processor_events_per_second = best = _best(figures.processor_rounds)
    for name, rounds in figures.pipe_rounds.items():
        figures.pipe_events_per_second[name] = _best(rounds)
        figures.ratio[name] = round(best / figures.pipe_events_per_second[name], 3)
    progress.done(
        f"(a) plain pipe: {figures.pipe_events_per_second[PLAIN.name]:,} events/s; (b) processor, "
        f"one worker: {best:,} events/s; b/a {figures.ratio[PLAIN.name]:.0%} (best of "
        f"{options.rounds} rounds each; to the other pipes: "
        + ", ".join(
            f"{name} {ratio:.0%}" for name, ratio in figures.ratio.items() if name != PLAIN.name
        )
        + ")"
    )
    try:
        figures.offered_load = round(best / 2)
        figures.latency_ms = await bench.latency(figures.offered_load, options.latency_seconds)
        figures.peak_rss_mb = round(kept[0].peak_rss_bytes() / 2**20, 1)
    finally:
        for worker in kept:
            worker.stop()
    progress.done(
        f"latency occurred_at → action command at {figures.offered_load:,} events/s: "
        + ", ".join(f"{k} {v:,} ms" for k, v in figures.latency_ms.items() if k != "samples")
        + f"; peak RSS {figures.peak_rss_mb} MB"
    )

    measured, _ = await bench.processor(start, len(events), runs, "two workers", workers=2)
    figures.two_workers_events_per_second = measured.events_per_second
    figures.scaling_factor = round(measured.events_per_second / best, 2)
    progress.done(
        f"two workers in one group: {figures.two_workers_events_per_second:,} events/s "
        f"(x{figures.scaling_factor})"
    )

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
    if options.soak_seconds:
        await bench.load(main)
        load = options.soak_load or best / 2
        figures.soak = await bench.soak(load, options.soak_seconds)
        progress.done(
            f"soak: {figures.soak['events']:,} events over {options.soak_seconds:,.0f}s at "
            f"{figures.soak['load']:,}/s, {figures.soak['processed']:,} processed; "
            f"processor RSS {figures.soak['rss_mb_first_tenth']} "
            f"MB in the first tenth, {figures.soak['rss_mb_second_tenth']} MB in the second, "
            f"{figures.soak['rss_mb_last_tenth']} MB in the last; runs {figures.soak['runs']}"
        )
    return figures


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

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    pipes = figures.pipe_events_per_second
    names = ["\n".join(["pipe,", *textwrap.wrap(name, 10)]) for name in pipes]
    names += ["processor", "processor ×2"]
    values = [
        *pipes.values(),
        figures.processor_events_per_second,
        figures.two_workers_events_per_second,
    ]
    left.bar(names, values, color=["#999999"] * len(pipes) + ["#2f6db5", "#5b9be0"])
    left.set_ylabel("events per second")
    left.set_title("Throughput on one broker")
    counts = list(figures.by_workflow_count)
    right.plot(counts, [figures.by_workflow_count[c] for c in counts], marker="o")
    right.set_ylim(bottom=0)
    right.set_xlabel("active workflows")
    right.set_title("Processor throughput by workflow count")
    fig.suptitle(f"coeflow bench, {figures.machine['cpus']} CPUs, {figures.machine['when']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="coeflow bench", description=__doc__.split("\n")[0])
    defaults = Options()
    parser.add_argument("--workflows", type=int, default=defaults.workflows)
    parser.add_argument("--tenants", type=int, default=defaults.tenants)
    parser.add_argument("--events", type=int, default=defaults.events)
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
        "--soak-seconds",
        type=float,
        default=defaults.soak_seconds,
        help="after the measurements, run a processor at half its maximum this long and "
        "report its memory (make soak: 1800)",
    )
    parser.add_argument(
        "--soak-load",
        type=float,
        default=defaults.soak_load,
        help="events a second in the soak (default: half the processor's measured maximum)",
    )
    parser.add_argument("--output", type=Path, default=defaults.output)
    args = parser.parse_args(argv)
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
    (options.output / "bench.json").write_text(json.dumps(asdict(figures), indent=2) + "\n")
    chart(figures, options.output / "bench.png")
    print(f"figures: {options.output / 'bench.json'}, chart: {options.output / 'bench.png'}")
    return 0

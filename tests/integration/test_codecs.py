"""Every compression codec Kafka has, produced by librdkafka (confluent-kafka) as platform
teams' producers do, read on the batched path (record changes) and by a Faust agent (the
executors' commands); what the worker writes, written with ``COEFLOW_COMPRESSION``'s codec;
and a worker that cannot decode a partition holds that one only.

Each test first reads the stored batches back raw and checks their compression attribute: the
broker must hand the consumer the batches compressed, or these tests would prove nothing (the
embedded Tansu keeps each batch as produced; a broker that recompressed would fail here)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from confluent_kafka import Producer

from coeflow.settings import Settings
from coeflow.tools.processes import WorkerProcess
from tests.factories import make_command
from tests.integration.harness import (
    Api,
    Peers,
    Record,
    lead_created,
    own_broker,
    read_until,
    seed_workflow,
    tenant,
    until,
)
from topics import codec
from topics.catalog import ACTION_OUTCOMES, RECORD_CHANGES, RUNS, action_topic

pytestmark = pytest.mark.integration

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
"""librdkafka's ``compression.type`` and the codec id a record batch's attributes carry."""

SNAPPY_MISSING = "UnsupportedCodecError: Libraries for snappy compression codec not found"

Message = tuple[str, int | None, bytes, bytes]
"""topic, partition (``None``: librdkafka's partitioner), key, value."""


def produce(
    bootstrap: str, by_codec: dict[str, list[Message]]
) -> dict[str, list[tuple[str, int, int]]]:
    """Send each codec's messages through its own librdkafka producer, all before any flush
    (the codecs interleave in the partitions); where each landed, (topic, partition, offset)."""
    producers, landed = {}, {name: [] for name in by_codec}  # type: ignore[var-annotated]
    for name, messages in by_codec.items():
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": name,
                "linger.ms": 20,  # messages sent together share a compressed batch
                "acks": "all",
                "log.connection.close": False,  # Tansu closes idle connections: not news
            }
        )
        producers[name] = producer

        def delivered(err: Any, msg: Any, name: str = name) -> None:
            assert err is None, err
            landed[name].append((msg.topic(), msg.partition(), msg.offset()))

        for topic, partition, key, value in messages:
            where = -1 if partition is None else partition  # -1: librdkafka's partitioner
            producer.produce(topic, value, key, where, on_delivery=delivered)
    for producer in producers.values():
        assert producer.flush(30) == 0, "not every message was delivered"
    return landed


async def stored_codecs(bootstrap: str, where: Iterable[tuple[str, int, int]]) -> set[int]:
    """The compression codec of the stored batch holding each (topic, partition, offset), read
    back with a raw fetch (the batch as the broker hands it to a consumer, not decompressed)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    found: set[int] = set()
    try:
        await client.force_metadata_update()
        for topic, partition, offset in where:
            node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            request = FetchRequest(100, 1, 1 << 20, 0, [(topic, [(partition, offset, 1 << 20)])])
            response = await client.send(node, request)
            records = MemoryRecords(response.topics[0][1][0][-1])
            while records.has_next():
                batch = records.next_batch()
                if batch.base_offset <= offset < batch.next_offset:
                    found.add(batch.compression_type)
                    break
            else:
                raise AssertionError(f"no stored batch holds {topic}[{partition}]@{offset}")
    finally:
        await client.close()
    return found


async def test_every_codec_is_read_on_record_changes_and_by_the_executors(
    api: Api, bootstrap: str, peers: Peers, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))
    events, commands = {}, {}
    for i, name in enumerate(CODECS):
        events[name] = [lead_created(acme, 10 * i + n) for n in range(6)]
        commands[name] = make_command(
            "call_webhook",
            {"url": peers.http.url(f"/ok/codec-{acme}-{name}"), "method": "POST"},
            tenant_id=acme,
            action_id=f"act-{acme}-{name}",
            run_id=f"run-{acme}-{name}",
        )
    hooks = action_topic("call_webhook")
    messages: dict[str, list[Message]] = {name: [] for name in CODECS}
    for name, batch in events.items():
        messages[name] += [
            (RECORD_CHANGES, None, e["record_id"].encode(), codec.dumps(e)) for e in batch
        ]
        command = commands[name]
        messages[name].append((hooks, None, command.action_id.encode(), codec.dumps(command)))
    landed = await asyncio.to_thread(produce, bootstrap, messages)

    for name, code in CODECS.items():
        for topic in (RECORD_CHANGES, hooks):
            stored = await stored_codecs(bootstrap, [w for w in landed[name] if w[0] == topic])
            assert stored == {code}, (name, topic)

    # Every event got its run (the batched path), every command its webhook (a Faust agent).
    expected = {e["event_id"] for batch in events.values() for e in batch}
    mine = lambda r: isinstance(r.value, dict) and r.value.get("tenant_id") == acme  # noqa: E731
    records = await read_until(
        bootstrap,
        [RUNS],
        lambda rs: expected <= {r.value["event_id"] for r in rs},
        keep=mine,
        within=60,
    )
    assert {r.value["event_id"] for r in records} == expected
    for name in CODECS:
        await until(partial(peers.http.to, f"/ok/codec-{acme}-{name}"))
    want = {c.action_id for c in commands.values()}

    def succeeded(r: Record) -> bool:
        return mine(r) and r.value["action_id"] in want and r.value["status"] == "succeeded"

    outcomes = await read_until(
        bootstrap, [ACTION_OUTCOMES], lambda rs: len(rs) >= len(want), keep=succeeded
    )
    # What the worker wrote, in the codec of COEFLOW_COMPRESSION (snappy unless the environment
    # says otherwise): the run records on the batched path, the outcomes by a Faust agent.
    written = [(r.topic, r.partition, r.offset) for r in [*records, *outcomes]]
    assert await stored_codecs(bootstrap, written) == {CODECS[Settings().compression]}
    assert shared_worker.process is not None and shared_worker.process.poll() is None
    health = await shared_worker.health()
    assert health["ready"] and health["held_partitions"] == []


async def test_a_partition_the_worker_cannot_decode_is_held_and_the_others_flow(
    workdir: Path, tmp_path: Path
) -> None:
    """A worker without cramjam (hidden from it) meets a snappy batch in partition 3."""
    hidden = tmp_path / "no-cramjam"
    hidden.mkdir()
    (hidden / "cramjam.py").write_text('raise ImportError("hidden by test_codecs.py")\n')
    path = os.pathsep.join(p for p in (str(hidden), os.environ.get("PYTHONPATH")) if p)
    acme = tenant()
    with own_broker(workdir) as broker:
        bootstrap = broker.bootstrap
        app_id = f"coeflow-it-codecs-{uuid.uuid4().hex[:6]}"
        worker = WorkerProcess(  # it writes as it must then: uncompressed
            bootstrap,
            app_id,
            workdir,
            COEFLOW_ROLES="processor,api",
            COEFLOW_COMPRESSION="none",
            PYTHONPATH=path,
        )
        await worker.start().wait_ready()
        try:
            await Api(worker.url).create(seed_workflow(acme))

            def change(n: int, partition: int) -> Message:
                event = lead_created(acme, n)
                return (RECORD_CHANGES, partition, event["record_id"].encode(), codec.dumps(event))

            await asyncio.to_thread(
                produce, bootstrap, {"gzip": [change(n, n) for n in range(8)] + [change(8, 3)]}
            )
            bad = await asyncio.to_thread(
                produce, bootstrap, {"snappy": [change(9, 3), change(10, 3)]}
            )
            await asyncio.to_thread(
                produce, bootstrap, {"gzip": [change(11, 3), change(12, 0), change(13, 5)]}
            )
            assert await stored_codecs(bootstrap, bad["snappy"]) == {CODECS["snappy"]}
            held_at = min(offset for _, _, offset in bad["snappy"])
            assert {p for _, p, _ in bad["snappy"]} == {3}

            expected = {f"{acme}-evt-{n}" for n in [*range(9), 12, 13]}
            mine = lambda r: isinstance(r.value, dict) and r.value.get("tenant_id") == acme  # noqa: E731
            await read_until(
                bootstrap,
                [RUNS],
                lambda rs: expected <= {r.value["event_id"] for r in rs},
                keep=mine,
                within=60,
            )
            health = await _held(worker)
            assert health["held_partitions"] == [
                {
                    "topic": RECORD_CHANGES,
                    "partition": 3,
                    "offset": held_at,
                    "error": SNAPPY_MISSING,
                }
            ]
            assert health["ready"] and worker.process is not None and worker.process.poll() is None
            assert (
                f"cannot decode {RECORD_CHANGES} partition 3 at offset {held_at} "
                f"({SNAPPY_MISSING})" in worker.log_path.read_text()
            )
            runs = await read_until(
                bootstrap,
                [RUNS],
                lambda rs: expected <= {r.value["event_id"] for r in rs},
                keep=mine,
            )
            assert {r.value["event_id"] for r in runs} == expected, "nothing after the hold ran"
        finally:
            worker.stop()


async def _held(worker: WorkerProcess, within: float = 20.0) -> dict[str, Any]:
    """The worker's health once it shows a held partition."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        health = await worker.health()
        if health["held_partitions"] or asyncio.get_running_loop().time() > deadline:
            return health
        await asyncio.sleep(0.2)

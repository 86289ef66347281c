"""A lightly loaded worker answers an event within tens of milliseconds: its fetches do not
sit at the broker waiting for a batch to fill (``COEFLOW_FETCH_WAIT``, processor/batches.py).

With the clients' default fetch wait the embedded broker held every fetch about 200 ms before
answering, so a single event's run took at least that; the bound here sits just under it, so
that the test fails on that behaviour and not on a loaded machine's ordinary delays.
"""

from __future__ import annotations

import statistics
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.integration.harness import Api, lead_created, seed_workflow, tenant
from topics import codec
from topics.catalog import RECORD_CHANGES, RUNS

pytestmark = pytest.mark.integration

EVENTS = 15
BOUND = 0.18
"""Seconds: the median from sending an event to reading its run record back."""


async def test_a_lightly_loaded_worker_answers_in_tens_of_milliseconds(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,  # as the worker reads: this reader must not add the delay itself
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=-1)
    await reader.start()
    await producer.start()
    try:
        partitions = [TopicPartition(RUNS, p) for p in sorted(reader.partitions_for_topic(RUNS))]
        reader.assign(partitions)
        await reader.seek_to_end(*partitions)
        waits = []
        for n in range(EVENTS):
            event = lead_created(acme, n)
            sent = time.monotonic()
            await producer.send_and_wait(RECORD_CHANGES, codec.dumps(event), key=f"L-{n}".encode())
            deadline = sent + 10
            while not await _run_read(reader, event["event_id"]):
                assert time.monotonic() < deadline, f"no run for event {n} within 10 s"
            waits.append(time.monotonic() - sent)
    finally:
        await producer.stop()
        await reader.stop()
    assert statistics.median(waits) < BOUND, sorted(round(w * 1000) for w in waits)


async def _run_read(reader: AIOKafkaConsumer, event_id: str) -> bool:
    for records in (await reader.getmany(timeout_ms=100)).values():
        for record in records:
            value = codec.loads(record.value) if record.value else None
            if isinstance(value, dict) and value.get("event_id") == event_id:
                return True
    return False

"""Record changes, the bulk of the traffic, on the batched path (``processor/batches.py``).

One consumer per worker in the group ``<app id>-record-changes``; each change is decoded once
and decided by the core against the record state of its partition; the new state goes to the
state's changelog with the change's other outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from processor.batches import BatchProcessor, OutputsByInput
from processor.core.pipeline import process_change
from processor.record_state import RecordStates
from processor.runtime import Runtime
from topics.catalog import RECORD_CHANGES


class ChangeProcessor(BatchProcessor):
    name = "record-changes"
    topics = (RECORD_CHANGES,)

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        self.states = RecordStates(runtime.settings)
        super().__init__(runtime, self.states, **kwargs)

    async def wait_until_startable(self) -> None:
        await self.runtime.replica.ready.wait()  # never match against half-loaded definitions

    def process(
        self, tp: TopicPartition, records: list[ConsumerRecord], now: datetime
    ) -> OutputsByInput:
        runtime, settings, states = self.runtime, self.settings, self.states
        index, state_of = runtime.catalog.index, states.of(tp.partition)
        produced: OutputsByInput = []
        for record in records:
            key, value = record.key, record.value
            outcome = process_change(key, value, record, index, settings, now, state_of)
            messages = outcome.messages  # the outcome is this loop's: extended in place
            if outcome.state is not None:
                messages.append(states.apply(tp.partition, outcome.state))
            runtime.stats.count(outcome, record)
            if messages:
                produced.append((record, messages))
        return produced

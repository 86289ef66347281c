"""A small CRM stand-in: applies record-mutation commands and reports what changed.

In production the CRM consumes ``workflow.actions.<type>`` for the record mutations (create
task, update field, ...), applies them, publishes the resulting ChangeEvents with the
command's causation, and reports each command's outcome on ``workflow.action-outcomes``. This
simulator does the same against an in-memory copy of the records it has seen on
``crm.record-changes``, so ``coeflow dev --demo`` and the tests close the loop: a workflow that
updates a field really re-enters the processor. One instance only: its records live in the
worker's memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import faust
from faust.streams import Stream
from pydantic import ValidationError

from actions.registry import REGISTRY
from coeflow.errors import InvalidEvent
from executors.registry import EXECUTORS
from processor.byte_topics import byte_topic
from processor.core.ids import derived_id
from processor.core.pipeline import Outbound, decode_change, source_of
from processor.delivery import deliver, producer_send
from processor.runtime import Runtime
from topics import codec
from topics.catalog import ACTION_OUTCOMES, RECORD_CHANGES, action_topic
from topics.commands import ActionCommand
from topics.events import ChangeEvent
from topics.outcomes import ActionOutcome

log = logging.getLogger(__name__)

Record = dict[str, Any]
RecordKey = tuple[str, str, str]
"""(tenant, record type, record id)"""


@dataclass(frozen=True, slots=True)
class Change:
    record_type: str
    record_id: str
    after: Record


def _set_path(record: Record, path: str, value: Any) -> Record:
    updated = dict(record)
    *parents, last = path.split(".")
    node = updated
    for name in parents:
        child = node.get(name)
        node[name] = dict(child) if isinstance(child, dict) else {}
        node = node[name]
    node[last] = value
    return updated


def _update(path: str, param: str) -> Callable[[Record, ActionCommand], Change]:
    def mutate(record: Record, command: ActionCommand) -> Change:
        target = command.params["field"] if path == "" else path
        after = _set_path(record, target, command.params.get(param))
        return Change(command.record.type, command.record.id, after)

    return mutate


def _create(record_type: str) -> Callable[[Record, ActionCommand], Change]:
    def mutate(record: Record, command: ActionCommand) -> Change:
        new_id = f"{record_type}-{command.action_id[:8]}"
        after = {
            **command.params,
            "id": new_id,
            "related_to": {"type": command.record.type, "id": command.record.id},
        }
        if record_type == "task":
            after.setdefault("status", "open")
        return Change(record_type, new_id, after)

    return mutate


def _enrol(record: Record, command: ActionCommand) -> Change:
    sequences = [*record.get("sequences", []), command.params["sequence_id"]]
    return Change(command.record.type, command.record.id, {**record, "sequences": sequences})


MUTATIONS: Mapping[str, Callable[[Record, ActionCommand], Change]] = {
    "update_field": _update("", "value"),
    "assign_owner": _update("owner_id", "owner_id"),
    "change_status": _update("status", "status"),
    "add_to_sequence": _enrol,
    "create_task": _create("task"),
    "create_case": _create("case"),
    "create_opportunity": _create("opportunity"),
    "add_note": _create("note"),
}
"""How the simulated CRM applies each record-mutation action type."""

assert set(MUTATIONS) == set(REGISTRY) - set(EXECUTORS), "every action type has one performer"


@dataclass
class SimulatedCrm:
    records: dict[RecordKey, Record] = field(default_factory=dict)
    deleted: set[RecordKey] = field(default_factory=set)
    applied: set[str] = field(default_factory=set)

    def observe(self, event: ChangeEvent) -> None:
        key = (event.tenant_id, event.record_type, event.record_id)
        if event.after is None:
            self.records.pop(key, None)
            self.deleted.add(key)
        else:
            self.records[key] = event.after
            self.deleted.discard(key)

    def apply(self, command: ActionCommand, now: datetime) -> ChangeEvent | None:
        """The change ``command`` makes, or ``None`` for a repeat of an applied command."""
        if command.action_id in self.applied:
            return None
        self.applied.add(command.action_id)
        target = (command.tenant_id, command.record.type, command.record.id)
        change = MUTATIONS[command.type](self.records.get(target, {}), command)
        key = (command.tenant_id, change.record_type, change.record_id)
        before = self.records.get(key)
        if before is None and key == target and key not in self.deleted:
            # The command's own record exists (a workflow ran on it); its change has not
            # reached this copy yet, which reads crm.record-changes apart from the processor.
            before = {}
        event = ChangeEvent(
            event_id=derived_id("crm-change", command.action_id),
            tenant_id=command.tenant_id,
            record_type=change.record_type,
            record_id=change.record_id,
            operation="updated" if before is not None else "created",
            occurred_at=now,
            before=before,
            after=change.after,
            actor_id=f"workflow:{command.workflow_id}",
            causation=command.causation,
        )
        self.records[key] = change.after
        return event


def register(app: faust.App, runtime: Runtime) -> None:
    crm = SimulatedCrm()
    send = producer_send(app)

    @app.agent(byte_topic(app, RECORD_CHANGES), name="crm-simulator-records")
    async def observe(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                crm.observe(decode_change(value, runtime.settings.max_event_bytes))
            except InvalidEvent:  # the processor dead-letters bad events; the CRM skips them
                continue

    topics = [action_topic(name) for name in MUTATIONS]

    @app.agent(byte_topic(app, *topics), name="crm-simulator-commands")
    async def apply(stream: faust.StreamT[bytes]) -> None:
        async for event in cast(Stream[bytes], stream).noack().events():
            message = event.message
            try:
                command = codec.decode(message.value, ActionCommand)
            except (ValueError, ValidationError) as exc:
                log.warning("CRM simulator: skipping an undecodable command: %s", exc)
                event.ack()
                continue
            now = runtime.clock()
            change = crm.apply(command, now)
            if change is not None:
                outcome = ActionOutcome.of(
                    command,
                    source=source_of(message),
                    attempt=1,
                    status="succeeded",
                    at=now,
                    detail=f"{change.operation} {change.record_type} {change.record_id}",
                )
                await deliver(
                    send,
                    [
                        Outbound(RECORD_CHANGES, change.record_id.encode(), codec.dumps(change)),
                        Outbound(ACTION_OUTCOMES, command.run_id.encode(), codec.dumps(outcome)),
                    ],
                )
            event.ack()

"""The benchmark's workloads (pure, seeded).

The mixed one (``workflows``, ``EventSource``): workflows in realistic trigger and condition
mixes, and ChangeEvents of about 500 bytes of which about one in twenty matches some workflow.
Each tenant gets the workflows of ``TEMPLATES`` in turn, so 10,000 workflows over 1,000 tenants
give each tenant all ten. Events spread evenly over the tenants; most are updates of activity
fields that no trigger watches, as in a real CRM. ``unrelated_workflows`` makes workflows of
tenants that no event belongs to: adding them must not slow matching down.

The every-event-runs one (``every_event_workflows``, ``CreatedLeads``): every event is a lead
created in a tenant with one ``record_created`` workflow whose condition (score 50 or more)
about half the leads meet, so every event starts a run and about half issue one ``add_note``:
the processor's work at its heaviest per event, where the mixed workload's is mostly a decode.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from coeflow.settings import Settings
from processor.core.compiler import compile_workflow
from processor.core.decide import Run
from processor.core.index import WorkflowIndex
from processor.core.pipeline import Outcome, process_change
from topics import codec
from topics.catalog import RECORD_CHANGES
from topics.records import RecordState
from topics.workflows import Workflow

EMAIL = {
    "type": "send_email",
    "to": "{{record.email}}",
    "subject": "Welcome, {{record.name}}",
    "body": "Hi {{record.name}}, {{record.owner_id}} will call you soon.",
}
TASK = {"type": "create_task", "title": "Call {{record.name}}", "due_in": "2d"}

TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "trigger": {"type": "record_created", "record_type": "lead"},
        "conditions": {"all": [{"field": "score", "op": "gte", "value": 50}]},
        "actions": [EMAIL, TASK],
    },
    {
        "trigger": {"type": "pipeline_stage_changed", "record_type": "deal", "to": "closed_won"},
        "actions": [
            {
                "type": "send_slack_message",
                "webhook_url": "https://hooks.slack.example/T0/B0",
                "text": "{{record.name}} won: {{record.amount}}",
            }
        ],
    },
    {
        "trigger": {"type": "task_completed"},
        "actions": [{"type": "add_note", "body": "Done: {{record.name}}"}],
    },
    {
        "trigger": {"type": "lead_score_threshold", "threshold": 90},
        "actions": [{"type": "assign_owner", "owner_id": "u-senior"}],
    },
    {
        "trigger": {"type": "status_changed", "record_type": "contact", "to": "customer"},
        "conditions": {"not": {"field": "email", "op": "is_empty"}},
        "actions": [{"type": "add_to_sequence", "sequence_id": "onboarding"}],
    },
    {
        "trigger": {"type": "field_value_changed", "record_type": "deal", "field": "amount"},
        "conditions": {
            "all": [
                {"field": "amount", "op": "gte", "value": 10000},
                {"field": "stage", "op": "not_in", "value": ["closed_won", "closed_lost"]},
            ]
        },
        "actions": [TASK],
    },
    {
        "trigger": {"type": "record_created", "record_type": "invoice"},
        "actions": [{"type": "add_note", "body": "Invoice {{record.number}}"}],
    },
    {
        "trigger": {"type": "case_escalated"},
        "actions": [{"type": "create_task", "title": "Escalated case {{record.name}}"}],
    },
    {
        "trigger": {"type": "contract_signed"},
        "actions": [{"type": "change_status", "status": "active"}],
    },
    {
        "trigger": {"type": "record_updated", "record_type": "company"},
        "conditions": {"any": [{"field": "industry", "op": "eq", "value": "retail"}]},
        "actions": [{"type": "add_note", "body": "{{record.name}} changed"}],
    },
)

KINDS, SHARES = ("lead", "deal", "contact", "task"), (0.35, 0.65, 0.85)
STAGES = ("qualification", "proposal", "negotiation", "closed_won", "closed_lost")
EPOCH = datetime(2026, 11, 25, tzinfo=UTC)


def tenant(n: int) -> str:
    return f"t-{n:05d}"


def workflows(count: int, tenants: int, *, first_tenant: int = 0) -> list[Workflow]:
    """``count`` active workflows, the templates in turn for each of ``tenants`` tenants."""
    made = []
    for n in range(count):
        owner = tenant(first_tenant + n % tenants)
        template = TEMPLATES[(n // tenants) % len(TEMPLATES)]
        made.append(
            Workflow.model_validate(
                {
                    "id": f"wf-{first_tenant + n % tenants:05d}-{n // tenants}",
                    "tenant_id": owner,
                    "name": f"{template['trigger']['type']} #{n}",
                    "status": "active",
                    "version": 1,
                    **template,
                }
            )
        )
    return made


EVERY_EVENT_TEMPLATE: dict[str, Any] = {
    "trigger": {"type": "record_created", "record_type": "lead"},
    "conditions": {"all": [{"field": "score", "op": "gte", "value": 50}]},
    "actions": [{"type": "add_note", "body": "New lead {{record.name}}, score {{record.score}}"}],
}


def every_event_workflows(tenants: int) -> list[Workflow]:
    """One workflow per tenant that every ``CreatedLeads`` event of the tenant runs."""
    return [
        Workflow.model_validate(
            {
                "id": f"wf-every-{n:05d}",
                "tenant_id": tenant(n),
                "name": f"every lead #{n}",
                "status": "active",
                "version": 1,
                **EVERY_EVENT_TEMPLATE,
            }
        )
        for n in range(tenants)
    ]


def unrelated_workflows(count: int, tenants: int) -> list[Workflow]:
    """Workflows of tenants ``tenants`` and up, which the events of ``events`` never touch."""
    return workflows(count, max(count // len(TEMPLATES), 1), first_tenant=tenants)


@dataclass(frozen=True, slots=True)
class EventSource:
    tenants: int
    seed: int = 7
    records: int = 50_000
    """Record ids per record type and tenant: the size of the CRM the events come from."""

    def events(
        self, count: int, *, prefix: str = "e", at: datetime | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """``count`` (key, value) pairs: ChangeEvents keyed by record id."""
        rng = random.Random(f"{self.seed}-{prefix}")
        for n in range(count):
            yield self.event(rng, n, prefix, at or EPOCH + timedelta(milliseconds=n))

    def event(self, rng: random.Random, n: int, prefix: str, at: datetime) -> tuple[bytes, bytes]:
        owner = tenant(rng.randrange(self.tenants))
        pick = rng.random()
        kind = KINDS[sum(pick >= share for share in SHARES)]
        record_id = f"{kind[0].upper()}-{rng.randrange(self.records)}"
        before = _record(rng, kind, record_id)
        created = rng.random() < 0.03
        after = dict(before)
        change = rng.random()
        if kind == "lead":
            after["score"] = rng.randrange(100) if change < 0.2 else before["score"]
        elif kind == "deal" and change < 0.1:
            after["stage"] = rng.choice(STAGES)
        elif kind == "deal" and change < 0.15:
            after["amount"] = rng.randrange(1_000, 50_000)
        elif kind == "contact" and change < 0.1:
            after["status"] = rng.choice(("customer", "prospect"))
        elif kind == "task" and change < 0.1:
            after["status"] = "completed"
        after["last_activity_at"] = at.isoformat()
        document = {
            "event_id": f"{prefix}-{n}",
            "tenant_id": owner,
            "record_type": kind,
            "record_id": record_id,
            "operation": "created" if created else "updated",
            "occurred_at": at,
            "before": None if created else before,
            "after": after,
            "actor_id": "u-bench",
            "causation": None,
        }
        return record_id.encode(), codec.dumps(document)


@dataclass(frozen=True, slots=True)
class CreatedLeads:
    """Leads created, evenly over ``tenants``, scores uniform over 0–99 (half reach 50)."""

    tenants: int
    seed: int = 17

    def events(
        self, count: int, *, prefix: str = "c", at: datetime | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        rng = random.Random(f"{self.seed}-{prefix}")
        for n in range(count):
            yield self.event(rng, n, prefix, at or EPOCH + timedelta(milliseconds=n))

    def event(self, rng: random.Random, n: int, prefix: str, at: datetime) -> tuple[bytes, bytes]:
        record_id = f"L-{prefix}-{n}"
        after = _record(rng, "lead", record_id)
        after["last_activity_at"] = at.isoformat()
        document = {
            "event_id": f"{prefix}-{n}",
            "tenant_id": tenant(rng.randrange(self.tenants)),
            "record_type": "lead",
            "record_id": record_id,
            "operation": "created",
            "occurred_at": at,
            "before": None,
            "after": after,
            "actor_id": "u-bench",
            "causation": None,
        }
        return record_id.encode(), codec.dumps(document)


def _record(rng: random.Random, kind: str, record_id: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": f"{kind.title()} {record_id}",
        "email": f"{record_id.lower()}@example.com",
        "owner_id": f"u-{rng.randrange(50)}",
        "status": "open",
        "phone": f"+1555{rng.randrange(10**7):07d}",
    }
    if kind == "lead":
        record["score"] = rng.randrange(100)
    elif kind == "deal":
        record["stage"] = rng.choice(STAGES[:3])
        record["amount"] = rng.randrange(1_000, 50_000)
    return record


@dataclass(frozen=True, slots=True)
class _Position:
    """Where an event was "read", as cheaply as a consumer record says it."""

    topic: str
    partition: int
    offset: int


def index_of(loaded: Iterable[Workflow]) -> WorkflowIndex:
    index = WorkflowIndex()
    for workflow in loaded:
        index.put(compile_workflow(workflow))
    return index


def decided_runs(
    events: Iterable[tuple[bytes, bytes]], index: WorkflowIndex
) -> Iterator[list[Run]]:
    """Each event's runs as the pure core decides them, record state included: what a
    processor must produce for ``events``, for the benchmark and the fault tests to expect."""
    settings = Settings(_env_file=None, kafka_bootstrap="expected:0")
    for outcome in core_outcomes(events, index, settings):
        yield outcome.runs


def core_outcomes(
    events: Iterable[tuple[bytes, bytes]], index: WorkflowIndex, settings: Settings
) -> Iterator[Outcome]:
    """Each event's outcome as the pure core gives it, the events at offsets 0, 1, … of one
    partition and their record state kept as a worker keeps it."""
    states: dict[str, RecordState] = {}
    now = datetime.now(UTC)
    for offset, (key, value) in enumerate(events):
        at = _Position(RECORD_CHANGES, 0, offset)
        outcome = process_change(key, value, at, index, settings, now, states.get)
        if outcome.state is not None:
            if outcome.state.state is None:
                states.pop(outcome.state.key, None)
            else:
                states[outcome.state.key] = outcome.state.state
        yield outcome

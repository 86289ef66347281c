"""``coeflow dev --demo``: the example workflows and a stream of realistic CRM events."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from mode import Service

from coeflow.settings import Settings
from coeflow.tools.dev_peers import sink_url
from processor.core.audit import workflow_change
from processor.replica import DefinitionsReplica
from topics import codec
from topics.audit import Actor
from topics.catalog import RECORD_CHANGES
from topics.workflows import Workflow

log = logging.getLogger("coeflow.tools.demo")

TENANT = "acme"
_DEMO = Actor(kind="system", name="coeflow dev --demo")

WELCOME_WORKFLOW: dict[str, Any] = {
    "id": "wf-welcome",
    "tenant_id": TENANT,
    "name": "New Lead → Welcome Email",
    "status": "active",
    "trigger": {"type": "record_created", "record_type": "lead"},
    "conditions": {"all": [{"field": "score", "op": "gte", "value": 50}]},
    "actions": [
        {
            "type": "send_email",
            "to": "{{record.email}}",
            "subject": "Welcome — Thanks for your interest",
            "body": "Hi {{record.name}},\n\nthanks for your interest in Coeffection. "
            "{{record.owner.name | default('Your account manager')}} will be in touch soon.",
        },
        {
            "type": "create_task",
            "title": "Follow-up call",
            "assignee": "{{record.owner_id}}",
            "due_in": "2d",
        },
    ],
}
"""The customer page's example: New Lead → Welcome Email."""

EXAMPLE_WORKFLOWS: tuple[dict[str, Any], ...] = (
    WELCOME_WORKFLOW,
    {
        "id": "wf-deal-won",
        "tenant_id": TENANT,
        "name": "Deal won → tell the team on Slack",
        "status": "active",
        "trigger": {"type": "pipeline_stage_changed", "record_type": "deal", "to": "closed_won"},
        "actions": [
            {
                "type": "send_slack_message",
                "webhook_url": sink_url("/slack/T000/B000"),
                "text": "🎉 {{record.name}} closed at {{record.amount}} {{record.currency}}",
            },
        ],
    },
    {
        "id": "wf-hot-lead",
        "tenant_id": TENANT,
        "name": "Hot lead → senior rep",
        "status": "active",
        "trigger": {"type": "lead_score_threshold", "threshold": 80},
        "conditions": {"not": {"field": "country", "op": "in", "value": ["ZZ"]}},
        "actions": [{"type": "assign_owner", "owner_id": "u-senior"}],
    },
)

_NAMES = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Margaret Hamilton",
    "Ken Thompson",
    "Frances Allen",
)
_OWNERS = (("u-7", "Maria Rossi"), ("u-8", "Jonas Berg"), ("u-9", "Aiko Tanaka"))
_STAGES = ("qualification", "proposal", "negotiation", "closed_won")


def demo_events(seed: int = 7) -> Iterator[dict[str, Any]]:
    """An endless, varied stream: leads created and scored, deals moving through the pipeline."""
    rng = random.Random(seed)
    leads: dict[str, dict[str, Any]] = {}
    deals: dict[str, dict[str, Any]] = {}
    for n in itertools.count(1):
        now = datetime.now(UTC)
        roll = rng.random()
        if roll < 0.5 or not leads:
            name = rng.choice(_NAMES)
            owner_id, owner_name = rng.choice(_OWNERS)
            record_id = f"L-{n}"
            after = {
                "name": name,
                "email": f"{name.split()[0].lower()}.{n}@example.com",
                "score": rng.randint(10, 95),
                "owner_id": owner_id,
                "owner": {"id": owner_id, "name": owner_name},
                "country": rng.choice(("DE", "FR", "US")),
            }
            leads[record_id] = after
            yield _event(n, "lead", record_id, "created", None, after, now)
        elif roll < 0.75:
            record_id = rng.choice(list(leads))
            before = leads[record_id]
            after = {**before, "score": min(100, before["score"] + rng.randint(5, 30))}
            leads[record_id] = after
            yield _event(n, "lead", record_id, "updated", before, after, now)
        else:
            record_id = f"D-{rng.randint(1, 5)}"
            deal = deals.get(record_id)
            stage = (
                _STAGES[min(_STAGES.index(deal["stage"]) + 1, len(_STAGES) - 1)]
                if deal
                else _STAGES[0]
            )
            after = {
                "name": f"Deal {record_id}",
                "amount": rng.randint(5, 90) * 1000,
                "currency": "EUR",
                "stage": stage,
            }
            deals[record_id] = after
            yield _event(n, "deal", record_id, "updated" if deal else "created", deal, after, now)
            if stage == "closed_won":
                del deals[record_id]


def _event(
    n: int, record_type: str, record_id: str, operation: str, before: Any, after: Any, now: datetime
) -> dict[str, Any]:
    return {
        "event_id": f"demo-{now:%Y%m%d%H%M%S}-{n}",
        "tenant_id": TENANT,
        "record_type": record_type,
        "record_id": record_id,
        "operation": operation,
        "occurred_at": now,
        "before": before,
        "after": after,
        "actor_id": "u-7",
        "causation": None,
    }


class DemoPublisher(Service):
    """Saves the example workflows, then publishes demo events at a steady, readable pace."""

    def __init__(
        self, settings: Settings, replica: DefinitionsReplica, interval: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings, self.replica, self.interval = settings, replica, interval

    @Service.task
    async def _publish(self) -> None:
        await self.replica.ready.wait()
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, linger_ms=5)
        await producer.start()
        try:
            for spec in EXAMPLE_WORKFLOWS:
                if self.replica.catalog.get(spec["id"]) is None:
                    now = self.settings.clock()()
                    workflow = Workflow.model_validate({**spec, "updated_at": now})
                    for message in workflow_change("workflow.created", None, workflow, _DEMO, now):
                        await producer.send_and_wait(message.topic, message.value, message.key)
            log.info(
                "demo: %d example workflows active; publishing a CRM event every %.1fs",
                len(EXAMPLE_WORKFLOWS),
                self.interval,
            )
            for event in demo_events():
                if self.should_stop:
                    break
                await producer.send_and_wait(
                    RECORD_CHANGES, key=event["record_id"].encode(), value=codec.dumps(event)
                )
                await self.sleep(self.interval)
        finally:
            await producer.stop()

"""Topic names (part of the public contract) and how the product creates them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

RECORD_CHANGES = "crm.record-changes"
DEFINITIONS = "workflow.definitions"
RUNS = "workflow.runs"
DEAD_LETTER = "workflow.dead-letter"
ACTION_OUTCOMES = "workflow.action-outcomes"
INBOUND_WEBHOOKS = "workflow.inbound-webhooks"
SCHEDULE_TICKS = "workflow.schedule-ticks"
TIMERS = "workflow.timers"
TIMER_FIRES = "workflow.timer-fires"
WORKFLOW_VERSIONS = "workflow.definition-versions"
API_TOKENS = "workflow.api-tokens"
AUDIT = "workflow.audit"
ACTIONS_PREFIX = "workflow.actions."

FENCE_KEY = b"coeflow-fence"
"""The key of fences: a null value a reader appends to a partition to know when it has read
everything written before it (``processor/replica.py``). Compacted topics refuse null keys, and
no workflow, timer or record has it; the record-change processor skips a fence (a backtest
fences ``crm.record-changes``)."""


def action_topic(action_type: str) -> str:
    """The topic that carries commands of one action type, e.g. ``workflow.actions.send_email``."""
    return ACTIONS_PREFIX + action_type


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def record_state_changelog(app_id: str) -> str:
    """The processor's record-state log: one per consumer group (``COEFLOW_APP_ID``)."""
    return f"{app_id}-record-state-changelog"


def run_progress_changelog(app_id: str) -> str:
    """The run tracker's log of unfinished runs: one per consumer group (``COEFLOW_APP_ID``)."""
    return f"{app_id}-run-progress-changelog"


def product_topics(
    action_types: Iterable[str], partitions: int, outcome_retention_ms: int, app_id: str
) -> list[TopicSpec]:
    """Every topic of the product, as ``coeflow`` creates them when they are missing.

    The outcome log is kept as long as the executors vouch for repeats; a schedule needs only
    its last tick (compacted); every saved version of a workflow and every token has its own
    key (compacted); the audit log is kept forever; inbound deliveries are checked for replays
    within minutes; the record state keeps each record's last value and the run progress each
    unfinished run's (compacted), partitioned like their inputs."""
    day_ms = str(24 * 3600 * 1000)
    return [
        TopicSpec(record_state_changelog(app_id), partitions, {"cleanup.policy": "compact"}),
        TopicSpec(run_progress_changelog(app_id), partitions, {"cleanup.policy": "compact"}),
        TopicSpec(RECORD_CHANGES, partitions),
        TopicSpec(DEFINITIONS, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(WORKFLOW_VERSIONS, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(API_TOKENS, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(AUDIT, partitions, {"retention.ms": "-1"}),
        TopicSpec(RUNS, partitions),
        TopicSpec(DEAD_LETTER, partitions),
        TopicSpec(ACTION_OUTCOMES, partitions, {"retention.ms": str(outcome_retention_ms)}),
        TopicSpec(INBOUND_WEBHOOKS, partitions, {"retention.ms": day_ms}),
        TopicSpec(SCHEDULE_TICKS, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(TIMERS, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(TIMER_FIRES, partitions),
        *(TopicSpec(action_topic(t), partitions) for t in action_types),
    ]

"""What the admin API reads besides the workflows: tokens, versions and the run history.

Every worker serving the API keeps all of it (replicas of whole topics, like the
definitions), so any of them answers any request and a rebalance changes nothing. Tokens and
versions are fenced: the API answers once they are complete. The run history is not: it is
bounded by settings and serves what it has read so far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiokafka.structs import ConsumerRecord
from mode import Service

from coeflow.clock import Clock
from coeflow.settings import Settings
from processor.admin_logs import AuditReplica, DeadLetterReplica
from processor.backtests import Backtests
from processor.core.history import RunHistory
from processor.replica import ModelReplica, OutcomeReplica, TopicReplica
from processor.shared_decoding import SharedDecodes, index_run
from processor.write_locks import KeyedLocks
from topics.access import ApiToken
from topics.catalog import API_TOKENS, RUNS, WORKFLOW_VERSIONS
from topics.workflows import Workflow

log = logging.getLogger(__name__)

_EXPIRE_EVERY = 60.0


class TokenReplica(ModelReplica[ApiToken]):
    topic = API_TOKENS
    read_back = True
    model = ApiToken

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.tokens: dict[str, ApiToken] = {}

    def on_value(self, key: bytes | None, item: ApiToken) -> None:
        self.tokens[item.token_id] = item

    def describe(self) -> str:
        return f"{len(self.tokens)} API tokens"


class VersionReplica(ModelReplica[Workflow]):
    """Every saved version of every workflow, deleted ones included."""

    topic = WORKFLOW_VERSIONS
    read_back = True
    model = Workflow

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.versions: dict[str, dict[int, Workflow]] = {}

    def on_value(self, key: bytes | None, item: Workflow) -> None:
        self.versions.setdefault(item.id, {})[item.version] = item

    def of(self, workflow_id: str) -> list[Workflow]:
        """Newest first."""
        known = self.versions.get(workflow_id, {})
        return [known[v] for v in sorted(known, reverse=True)]

    def latest(self, workflow_id: str) -> int:
        return max(self.versions.get(workflow_id, {0: None}))

    def describe(self) -> str:
        return f"{sum(map(len, self.versions.values()))} versions"


class RunReplica(TopicReplica):
    """The run history's copy of ``workflow.runs``; it shares what it reads of each run with the
    run tracker (``decodes``), which reads the runs of its partitions in its own group."""

    topic = RUNS
    fenced = False
    reader = "run-replica"

    def __init__(
        self,
        settings: Settings,
        history: RunHistory,
        decodes: SharedDecodes | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, **kwargs)
        self.history = history
        self.shared = decodes.join(self.reader, self.topic) if decodes is not None else None

    def apply_record(self, record: ConsumerRecord) -> None:
        if self.shared is None or record.value is None:
            self.apply(record.key, record.value)
            return
        run = self.shared.decoded(record.partition, record.offset, record.value, index_run)
        if run is not None:
            self.history.add_run(record.value, run)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return  # a fence
        try:
            self.history.add_run(value)
        except ValueError as exc:  # pydantic's ValidationError is one
            log.warning("run history: skipping an undecodable run (key %r): %s", key, exc)


class HistoryExpiry(Service):
    """Drops runs past their age from the history, once a minute."""

    def __init__(self, history: RunHistory, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history, self.clock = history, clock

    @Service.timer(_EXPIRE_EVERY)
    async def _expire(self) -> None:
        self.history.expire(self.clock())


@dataclass
class AdminViews:
    tokens: TokenReplica
    versions: VersionReplica
    history: RunHistory
    services: list[Service]
    audit: AuditReplica
    dead_letters: DeadLetterReplica
    backtests: Backtests
    """The backtests this worker runs (in child processes) and keeps for a while."""
    writes: KeyedLocks = field(default_factory=KeyedLocks)
    """Admin writes on one worker, one at a time per subject (``workflow:<id>``,
    ``token:<id>``): a workflow's versions count up one by one; other subjects overlap."""

    @classmethod
    def create(
        cls,
        settings: Settings,
        clock: Clock,
        outcomes: OutcomeReplica,
        decodes: SharedDecodes | None = None,
        **service_kwargs: Any,
    ) -> AdminViews:
        """The projections; the run history folds the worker's one reader of the outcome log
        (``outcomes``), which whoever makes it runs, and shares its decoding of the runs with
        the run tracker (``decodes``)."""
        history = RunHistory(
            per_workflow=settings.run_history_per_workflow,
            max_age=timedelta(days=settings.run_history_days),
            max_runs=settings.run_history_max_runs,
            per_tenant=settings.run_history_per_tenant,
            max_bytes=settings.run_history_max_bytes,
            tenant_bytes=settings.run_history_max_bytes // 4,
        )
        tokens = TokenReplica(settings, **service_kwargs)
        versions = VersionReplica(settings, **service_kwargs)
        audit = AuditReplica(settings, **service_kwargs)
        dead_letters = DeadLetterReplica(settings, **service_kwargs)
        backtests = Backtests(settings, clock, **service_kwargs)
        services: list[Service] = [
            tokens,
            versions,
            audit,
            dead_letters,
            RunReplica(settings, history, decodes, **service_kwargs),
            HistoryExpiry(history, clock, **service_kwargs),
            backtests,
        ]
        outcomes.folds.append(history.add_outcome)
        return cls(tokens, versions, history, services, audit, dead_letters, backtests)

    def ready(self) -> bool:
        return self.tokens.ready.is_set() and self.versions.ready.is_set()

"""How a worker is put together (no broker: the app is built, not started): which parts each
set of roles runs."""

from __future__ import annotations

from typing import Any

from coeflow.settings import Settings
from processor.app import App, create_app, parts_of, runtime_of
from processor.run_tracker import RunTracker

OUTCOMES = "workflow.action-outcomes"


def app_with(roles: str | None = None) -> App:
    extra: dict[str, Any] = {} if roles is None else {"roles": roles}
    return create_app(Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1", **extra))  # type: ignore[call-arg]


def services(app: App) -> list[Any]:
    """What ``add_dependency`` gave the app (mode keeps it there)."""
    return list(app._children)


def names(app: App) -> set[str]:
    return {type(s).__name__ for s in services(app)}


def paths(app: App) -> set[str]:
    return set(app.web.views)


PROJECTIONS = {
    "TokenReplica",
    "VersionReplica",
    "AuditReplica",
    "DeadLetterReplica",
    "RunReplica",
    "HistoryExpiry",
}
DECIDING_AGENTS = {"inbound-webhooks", "schedule-ticks", "timer-fires"}


def test_one_reader_of_the_outcome_log_feeds_the_ledger_and_the_run_history() -> None:
    app = app_with()
    executors, admin = parts_of(app).executors, runtime_of(app).admin
    assert executors is not None and admin is not None
    outcomes = executors.replica
    assert outcomes.folds == [executors.ledger.apply, admin.history.add_outcome]
    readers = [s for s in admin.services if getattr(s, "topic", None) == outcomes.topic]
    assert readers == [], "the run history reads no outcome log of its own"


def test_the_default_roles_run_everything_a_worker_ran_before_the_api_role() -> None:
    app = app_with()
    assert runtime_of(app).settings.roles == {"processor", "api", "executors"}
    assert parts_of(app).changes is not None and parts_of(app).executors is not None
    assert runtime_of(app).admin is not None
    assert {"DefinitionsReplica", "ChangeProcessor", "RunTracker", "DeliveryReplica"} <= names(app)
    assert names(app) >= PROJECTIONS
    assert set(app.agents) >= DECIDING_AGENTS
    assert {"/health", "/api/v1/workflows", "/hooks/{workflow_id}", "/"} <= paths(app)
    assert app.boot_strategy._should_enable_kafka_consumer()


def test_the_processor_role_alone_decides_runs_and_runs_nothing_of_the_api() -> None:
    app = app_with("processor")
    assert parts_of(app).changes is not None and parts_of(app).executors is None
    assert runtime_of(app).admin is None
    assert names(app) == {"DefinitionsReplica", "ChangeProcessor", "Scheduler", "TimerService"}
    assert not [s for s in services(app) if getattr(s, "topic", None) == OUTCOMES]
    assert set(app.agents) == DECIDING_AGENTS  # deliveries still run here
    assert paths(app) == {"/health"}, "no admin API, web app or inbound webhook URL"
    assert app.boot_strategy._should_enable_kafka_consumer()  # its agents' group


def test_the_api_role_alone_serves_and_tracks_and_decides_nothing() -> None:
    app = app_with("api")
    assert parts_of(app).changes is None and parts_of(app).executors is None
    admin = runtime_of(app).admin
    assert admin is not None
    assert "ChangeProcessor" not in names(app) and "Scheduler" not in names(app)
    assert [type(s) for s in services(app) if isinstance(s, RunTracker)] == [RunTracker]
    assert names(app) >= PROJECTIONS and "DeliveryReplica" in names(app)
    assert {"/health", "/api/v1/workflows", "/hooks/{workflow_id}", "/", "/sign-in"} <= paths(app)
    assert len(app.agents) == 0
    assert not app.boot_strategy._should_enable_kafka_consumer(), (
        "no agent: it must not join the app's Faust group beside the processors"
    )


def test_the_api_role_alone_reads_the_outcome_log_without_fencing_it() -> None:
    app = app_with("api")
    admin = runtime_of(app).admin
    assert parts_of(app).executors is None and admin is not None
    [outcomes] = [s for s in services(app) if getattr(s, "topic", None) == OUTCOMES]
    assert outcomes.folds == [admin.history.add_outcome]
    assert not outcomes.fenced, "nothing here waits for it: it writes no fences"


def test_executors_alone_run_neither_the_processor_nor_the_api() -> None:
    app = app_with("executors")
    assert parts_of(app).changes is None and runtime_of(app).admin is None
    assert names(app) == {"ExecutorRole"}
    assert paths(app) == {"/health"}
    executors = parts_of(app).executors
    assert executors is not None and executors.replica.fenced

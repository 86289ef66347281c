"""How a worker is put together (no broker: the app is built, not started)."""

from __future__ import annotations

from coeflow.settings import Settings
from processor.app import create_app, parts_of, runtime_of


def test_one_reader_of_the_outcome_log_feeds_the_ledger_and_the_run_history() -> None:
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1")  # type: ignore[call-arg]
    app = create_app(settings)
    executors, admin = parts_of(app).executors, runtime_of(app).admin
    assert executors is not None and admin is not None
    outcomes = executors.replica
    assert outcomes.folds == [executors.ledger.apply, admin.history.add_outcome]
    readers = [s for s in admin.services if getattr(s, "topic", None) == outcomes.topic]
    assert readers == [], "the run history reads no outcome log of its own"


def test_a_processor_alone_reads_the_outcome_log_without_fencing_it() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, kafka_bootstrap="127.0.0.1:1", roles="processor"
    )
    app = create_app(settings)
    admin = runtime_of(app).admin
    assert parts_of(app).executors is None and admin is not None
    [outcomes] = [
        s
        for s in app._children  # what add_dependency gave the app (mode keeps it there)
        if getattr(s, "topic", None) == "workflow.action-outcomes"
    ]
    assert outcomes.folds == [admin.history.add_outcome]
    assert not outcomes.fenced, "nothing here waits for it: it writes no fences"

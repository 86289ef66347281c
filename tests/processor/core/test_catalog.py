"""The materialised definitions topic: snapshots, tombstones and snapshots it cannot run."""

from __future__ import annotations

from processor.core.catalog import WorkflowCatalog
from tests.factories import Factory, make_workflow
from topics import codec


def test_snapshots_replace_and_tombstones_delete(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    catalog = WorkflowCatalog()
    catalog.apply(b"wf-welcome", codec.dumps(workflow_factory()))
    catalog.apply(b"wf-welcome", codec.dumps(workflow_factory(version=2, name="Renamed")))
    workflow = catalog.get("wf-welcome")
    assert workflow is not None and workflow.version == 2 and workflow.name == "Renamed"
    assert len(list(catalog.index.candidates(event_factory()))) == 1
    catalog.apply(b"wf-welcome", None)
    assert catalog.get("wf-welcome") is None and len(catalog.index) == 0


def test_a_snapshot_that_cannot_run_stops_the_workflow_and_says_why(
    workflow_factory: Factory,
) -> None:
    catalog = WorkflowCatalog()
    catalog.apply(b"wf-welcome", codec.dumps(workflow_factory()))
    catalog.apply(b"wf-welcome", b"{oops")
    assert catalog.get("wf-welcome") is None and len(catalog.index) == 0
    assert "wf-welcome" in catalog.rejected
    catalog.apply(b"wf-other", codec.dumps(workflow_factory()))
    assert "differs from the snapshot's id" in catalog.rejected["wf-other"].reason
    catalog.apply(b"wf-welcome", codec.dumps(workflow_factory(version=3)))
    assert "wf-welcome" not in catalog.rejected and catalog.get("wf-welcome") is not None


def test_workflows_are_listed_per_tenant(workflow_factory: Factory) -> None:
    catalog = WorkflowCatalog()
    catalog.apply(b"a", codec.dumps(workflow_factory(id="a")))
    catalog.apply(b"b", codec.dumps(workflow_factory(id="b", tenant_id="globex", status="draft")))
    assert [w.id for w in catalog.workflows("globex")] == ["b"]
    assert sorted(w.id for w in catalog.workflows()) == ["a", "b"]


def test_active_scheduled_workflows_are_kept_apart_for_the_scheduler() -> None:
    catalog = WorkflowCatalog()
    schedule = {"type": "scheduled", "cron": "0 9 * * *", "timezone": "UTC"}
    for workflow_id, status in (("wf-a", "active"), ("wf-b", "draft")):
        workflow = make_workflow(id=workflow_id, status=status, trigger=schedule, conditions=None)
        catalog.apply(workflow_id.encode(), codec.dumps(workflow))
    catalog.apply(b"wf-c", codec.dumps(make_workflow(id="wf-c", status="active")))
    assert set(catalog.scheduled) == {"wf-a"}
    catalog.apply(b"wf-a", None)
    assert catalog.scheduled == {}

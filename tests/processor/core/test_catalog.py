"""The materialised definitions topic: snapshots, tombstones and snapshots it cannot run."""

from __future__ import annotations

from processor.core.catalog import WorkflowCatalog
from tests.factories import make_event, make_workflow
from topics import codec


def test_snapshots_replace_and_tombstones_delete() -> None:
    catalog = WorkflowCatalog()
    catalog.apply(b"wf-welcome", codec.dumps(make_workflow()))
    catalog.apply(b"wf-welcome", codec.dumps(make_workflow(version=2, name="Renamed")))
    workflow = catalog.get("wf-welcome")
    assert workflow is not None and workflow.version == 2 and workflow.name == "Renamed"
    assert len(list(catalog.index.candidates(make_event()))) == 1
    catalog.apply(b"wf-welcome", None)
    assert catalog.get("wf-welcome") is None and len(catalog.index) == 0


def test_a_snapshot_that_cannot_run_stops_the_workflow_and_says_why() -> None:
    catalog = WorkflowCatalog()
    catalog.apply(b"wf-welcome", codec.dumps(make_workflow()))
    catalog.apply(b"wf-welcome", b"{oops")
    assert catalog.get("wf-welcome") is None and len(catalog.index) == 0
    assert "wf-welcome" in catalog.rejected
    catalog.apply(b"wf-other", codec.dumps(make_workflow()))
    assert "differs from the snapshot's id" in catalog.rejected["wf-other"].reason
    catalog.apply(b"wf-welcome", codec.dumps(make_workflow(version=3)))
    assert "wf-welcome" not in catalog.rejected and catalog.get("wf-welcome") is not None


def test_workflows_are_listed_per_tenant() -> None:
    catalog = WorkflowCatalog()
    catalog.apply(b"a", codec.dumps(make_workflow(id="a")))
    catalog.apply(b"b", codec.dumps(make_workflow(id="b", tenant_id="globex", status="draft")))
    assert [w.id for w in catalog.workflows("globex")] == ["b"]
    assert sorted(w.id for w in catalog.workflows()) == ["a", "b"]

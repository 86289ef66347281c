"""The index: lookups by (tenant, record type, trigger kind), kept current as workflows change."""

from __future__ import annotations

from processor.core.compiler import compile_workflow
from processor.core.index import WorkflowIndex
from tests.factories import make_event, make_workflow


def index_of(*workflows: object) -> WorkflowIndex:
    index = WorkflowIndex()
    for workflow in workflows:
        index.put(compile_workflow(workflow))  # type: ignore[arg-type]
    return index


def ids(index: WorkflowIndex, event: object) -> list[str]:
    return [c.id for c in index.candidates(event)]  # type: ignore[arg-type]


def test_candidates_are_only_the_tenants_workflows_for_that_record_type_and_operation() -> None:
    index = index_of(
        make_workflow(id="wf-lead-created"),
        make_workflow(id="wf-other-tenant", tenant_id="globex"),
        make_workflow(
            id="wf-deal-created", trigger={"type": "record_created", "record_type": "deal"}
        ),
        make_workflow(
            id="wf-lead-updated", trigger={"type": "record_updated", "record_type": "lead"}
        ),
    )
    assert ids(index, make_event()) == ["wf-lead-created"]
    assert ids(index, make_event(tenant_id="globex")) == ["wf-other-tenant"]
    assert ids(index, make_event(operation="updated", before={"a": 1})) == ["wf-lead-updated"]
    assert ids(index, make_event(tenant_id="initech")) == []


def test_only_active_workflows_are_indexed() -> None:
    index = index_of(
        make_workflow(id="wf-draft", status="draft"), make_workflow(id="wf-off", status="inactive")
    )
    assert len(index) == 0 and ids(index, make_event()) == []


def test_a_new_version_replaces_the_old_and_deactivation_removes_it() -> None:
    index = index_of(make_workflow())
    index.put(
        compile_workflow(
            make_workflow(version=2, trigger={"type": "record_created", "record_type": "deal"})
        )
    )
    assert ids(index, make_event()) == []
    assert ids(index, make_event(record_type="deal")) == ["wf-welcome"]
    index.put(compile_workflow(make_workflow(version=3, status="inactive")))
    assert len(index) == 0 and ids(index, make_event(record_type="deal")) == []


def test_removal_leaves_no_empty_buckets() -> None:
    index = index_of(make_workflow(id="a"), make_workflow(id="b"))
    index.remove("a")
    assert ids(index, make_event()) == ["b"]
    index.remove("b")
    index.remove("never-there")
    assert index._by_record_type == {}

"""The index: lookups by (tenant, record type, trigger kind), kept current as workflows change."""

from __future__ import annotations

from processor.core.compiler import compile_workflow
from processor.core.index import WorkflowIndex
from tests.factories import Factory


def index_of(*workflows: object) -> WorkflowIndex:
    index = WorkflowIndex()
    for workflow in workflows:
        index.put(compile_workflow(workflow))  # type: ignore[arg-type]
    return index


def ids(index: WorkflowIndex, event: object) -> list[str]:
    return [c.id for c in index.candidates(event)]  # type: ignore[arg-type]


def test_candidates_are_only_the_tenants_workflows_for_that_record_type_and_operation(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    index = index_of(
        workflow_factory(id="wf-lead-created"),
        workflow_factory(id="wf-other-tenant", tenant_id="globex"),
        workflow_factory(
            id="wf-deal-created", trigger={"type": "record_created", "record_type": "deal"}
        ),
        workflow_factory(
            id="wf-lead-updated", trigger={"type": "record_updated", "record_type": "lead"}
        ),
    )
    assert ids(index, event_factory()) == ["wf-lead-created"]
    assert ids(index, event_factory(tenant_id="globex")) == ["wf-other-tenant"]
    assert ids(index, event_factory(operation="updated", before={"a": 1})) == ["wf-lead-updated"]
    assert ids(index, event_factory(tenant_id="initech")) == []


def test_only_active_workflows_are_indexed(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    index = index_of(
        workflow_factory(id="wf-draft", status="draft"),
        workflow_factory(id="wf-off", status="inactive"),
    )
    assert len(index) == 0 and ids(index, event_factory()) == []


def test_a_new_version_replaces_the_old_and_deactivation_removes_it(
    event_factory: Factory, workflow_factory: Factory
) -> None:
    index = index_of(workflow_factory())
    index.put(
        compile_workflow(
            workflow_factory(version=2, trigger={"type": "record_created", "record_type": "deal"})
        )
    )
    assert ids(index, event_factory()) == []
    assert ids(index, event_factory(record_type="deal")) == ["wf-welcome"]
    index.put(compile_workflow(workflow_factory(version=3, status="inactive")))
    assert len(index) == 0 and ids(index, event_factory(record_type="deal")) == []


def test_removal_leaves_no_empty_buckets(event_factory: Factory, workflow_factory: Factory) -> None:
    index = index_of(workflow_factory(id="a"), workflow_factory(id="b"))
    index.remove("a")
    assert ids(index, event_factory()) == ["b"]
    index.remove("b")
    index.remove("never-there")
    assert index._watching == {} and index._where == {}

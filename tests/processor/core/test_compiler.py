from __future__ import annotations

import pytest

from coeflow.demo import EXAMPLE_WORKFLOWS
from coeflow.errors import InvalidWorkflow
from processor.core.compiler import compile_workflow
from tests.factories import Factory
from topics.workflows import Workflow


def test_the_seed_workflow_compiles(workflow_factory: Factory) -> None:
    compiled = compile_workflow(workflow_factory())
    assert compiled.kind.name == "record_created"
    assert compiled.trigger.record_type == "lead"
    assert [a.action.name for a in compiled.actions] == ["send_email", "create_task"]


@pytest.mark.parametrize("spec", EXAMPLE_WORKFLOWS, ids=lambda s: s["id"])
def test_the_demo_workflows_compile(spec: dict[str, object]) -> None:
    compile_workflow(Workflow.model_validate(spec))


def test_every_problem_is_reported_at_once_with_its_location(workflow_factory: Factory) -> None:
    workflow = workflow_factory(
        trigger={"type": "status_changed", "record_type": "deal", "form": "open"},
        conditions={"all": [{"field": "score", "op": "greater", "value": 1}]},
        actions=[
            {"type": "send_fax"},
            {"type": "send_email", "to": "x", "subject": "s", "body": "{{recrd.name}}"},
        ],
    )
    with pytest.raises(InvalidWorkflow) as raised:
        compile_workflow(workflow)
    assert [p.loc for p in raised.value.problems] == [
        "trigger.form",
        "conditions.all.0.op",
        "actions.0.type",
        "actions.1.to",
        "actions.1.body",
    ]

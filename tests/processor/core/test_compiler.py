from __future__ import annotations

import pytest

from coeflow.addresses import Allowlist
from coeflow.errors import InvalidWorkflow
from coeflow.tools.demo import EXAMPLE_WORKFLOWS
from processor.core.compiler import compile_workflow, validate_workflow
from tests.factories import SEED_WORKFLOW, Factory
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


def problems_of(document: dict[str, object], allowlist: Allowlist | None = None) -> list[str]:
    with pytest.raises(InvalidWorkflow) as caught:
        validate_workflow(document, allowlist)
    return [str(p) for p in caught.value.problems]


def test_schema_and_compiler_problems_come_together() -> None:
    problems = problems_of(
        {
            "id": "wf-x",
            "tenant_id": "acme",
            "trigger": {"type": "scheduled", "cron": "0 0 31 2 *"},
            "conditions": {"all": [{"field": "score", "op": "bogus", "value": 1}]},
            "actions": [
                {"type": "send_email", "to": "{{record.email", "subject": "x", "body": "y"},
                {"type": "create_task", "title": "t", "due_in": "999999999d"},
            ],
        }
    )
    assert problems[0] == "name: Field required"
    assert [p.split(":", 1)[0] for p in problems[1:]] == [
        "trigger.cron",
        "conditions.all.0.op",
        "actions.0.to",
        "actions.1.due_in",
    ]
    assert "would never fire" in problems[1] and "ten years" in problems[4]


def test_a_url_that_outbound_calls_could_never_reach_is_refused_at_save() -> None:
    document = {
        **SEED_WORKFLOW,
        "actions": [
            {"type": "call_webhook", "url": "http://169.254.169.254/latest/meta-data"},
            {"type": "send_slack_message", "webhook_url": "http://0x7f000001/", "text": "x"},
            {"type": "call_webhook", "url": "https://{{record.host}}/hook"},  # judged when called
            {"type": "call_webhook", "url": "https://hooks.example.com/in"},
        ],
    }
    problems = problems_of(document, Allowlist.parse([]))
    assert problems == [
        "actions.0.url: outbound calls may not reach it: 169.254.169.254 is link-local (cloud "
        "metadata lives there); if this address is meant, list it in COEFLOW_OUTBOUND_ALLOWLIST",
        "actions.1.webhook_url: outbound calls may not reach it: 127.0.0.1 is loopback; if this "
        "address is meant, list it in COEFLOW_OUTBOUND_ALLOWLIST",
    ]
    allowed = {**document, "actions": document["actions"][1:]}
    validate_workflow(allowed, Allowlist.parse(["127.0.0.1"]))


def test_conditions_nested_past_the_limit_are_refused_not_left_for_the_encoder() -> None:
    condition: dict[str, object] = {"field": "score", "op": "gte", "value": 1}
    for _ in range(130):
        condition = {"not": condition}
    problems = problems_of({**SEED_WORKFLOW, "conditions": condition})
    assert problems == ["conditions: nests objects and arrays more than 64 levels deep"]


def test_a_header_value_with_a_line_break_is_refused_at_save() -> None:
    action = {"type": "call_webhook", "url": "https://a.example/h", "headers": {"X-A": "1\r\nX: 2"}}
    problems = problems_of({**SEED_WORKFLOW, "actions": [action]})
    assert problems == [
        "actions.0.headers.X-A: a header value is one line without control characters"
    ]


@pytest.mark.parametrize(
    ("part", "loc"),
    [
        ({"conditions": {"all": [{"field": "score\n", "op": "gte", "value": 1}]}}, "conditions"),
        (
            {
                "actions": [
                    {"type": "call_webhook", "url": "https://a.example/", "headers": {"X\n": "1"}}
                ]
            },
            "actions.0.headers",
        ),
        (
            {
                "trigger": {
                    "type": "record_stalled",
                    "record_type": "deal",
                    "field": "stage\n",
                    "for": "1d",
                }
            },
            "trigger.field",
        ),
    ],
)
def test_a_name_with_a_trailing_line_break_is_refused(part: dict[str, object], loc: str) -> None:
    [problem] = problems_of({**SEED_WORKFLOW, **part})
    assert problem.startswith(loc), problem


def test_a_workflow_with_too_many_merge_fields_is_refused_before_they_are_parsed() -> None:
    body = " ".join(["{{ record.name|title }}"] * 20)
    actions = [{"type": "add_note", "body": body} for _ in range(26)]  # 520 fields
    assert problems_of({**SEED_WORKFLOW, "actions": actions}) == [
        "actions: 520 merge fields in all; a workflow may have 500"
    ]

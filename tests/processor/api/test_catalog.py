"""The catalog endpoint's answer and the OpenAPI document's unions: both generated from the
registries' models, so a client sees every kind's real parameters."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # schemathesis's validator (the dev extra has it through schemathesis)

from actions.registry import REGISTRY as ACTIONS
from processor.api.catalog import catalog
from processor.api.openapi import document
from processor.core.triggers import KINDS
from processor.core.vocabulary import vocabulary
from tests.factories import SEED_WORKFLOW


def valid(instance: Any, schema: dict[str, Any]) -> bool:
    return bool(jsonschema_rs.Draft202012Validator(schema).is_valid(instance))


def test_the_catalog_is_the_vocabulary_as_the_api_answers_it() -> None:
    answer = catalog().model_dump(mode="json")
    assert answer == vocabulary()
    assert [t["type"] for t in answer["triggers"]] == [k.name for k in KINDS]
    assert [a["type"] for a in answer["actions"]] == list(ACTIONS)


def test_the_summaries_read_as_plain_text_without_rst_quotes() -> None:
    answer = catalog().model_dump(mode="json")
    summaries = [t["summary"] for t in answer["triggers"]] + [
        a["summary"] for a in answer["actions"]
    ]
    assert [s for s in summaries if s and "``" in s] == []
    kinds = {t["type"]: t for t in answer["triggers"]}
    assert kinds["field_value_changed"]["summary"].startswith("`from`/`to` narrow the change")


def test_each_parameter_schema_validates_what_the_model_validates() -> None:
    kinds = {t.type: t for t in catalog().triggers}
    schema = kinds["scheduled"].parameters
    assert valid({"record_type": "schedule", "cron": "0 9 * * 1"}, schema)
    assert not valid({"record_type": "schedule"}, schema)  # cron is required
    actions = {a.type: a for a in catalog().actions}
    task = actions["create_task"].parameters
    assert valid({"title": "Follow-up call", "due_in": "2d"}, task)
    assert not valid({"title": "x", "priority": "urgent"}, task)


def body_schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", **document()}


def test_triggers_and_actions_are_unions_discriminated_by_type() -> None:
    schemas = document()["components"]["schemas"]
    trigger = schemas["TriggerSpec"]
    assert trigger["discriminator"]["propertyName"] == "type"
    assert set(trigger["discriminator"]["mapping"]) == {k.name for k in KINDS}
    assert len(trigger["oneOf"]) == len(KINDS)
    threshold = schemas["LeadScoreThresholdTrigger"]
    assert threshold["properties"]["type"] == {"const": "lead_score_threshold", "type": "string"}
    assert threshold["required"] == ["type", "threshold"]
    action = schemas["ActionSpec"]
    assert set(action["discriminator"]["mapping"]) == set(ACTIONS)
    assert schemas["SendEmailAction"]["additionalProperties"] is False


def test_a_client_can_check_a_workflow_body_against_the_document() -> None:
    schema = body_schema("WorkflowBody")
    assert valid(SEED_WORKFLOW, schema)
    bad_threshold = {**SEED_WORKFLOW, "trigger": {"type": "lead_score_threshold", "threshold": "x"}}
    assert not valid(bad_threshold, schema)
    unknown_field = {**SEED_WORKFLOW, "actions": [{"type": "send_email", "to": "a", "cc": "b"}]}
    assert not valid(unknown_field, schema)
    assert not valid({**SEED_WORKFLOW, "trigger": {"type": "no_such_kind"}}, schema)

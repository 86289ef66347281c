"""How the API shows a workflow: inbound webhook secrets as hints; the one a write made, in
that write's answer only."""

from __future__ import annotations

from datetime import timedelta

from processor.api.openapi import document
from processor.api.workflows import _saved
from processor.core.deliveries import with_secrets
from tests.factories import NOW
from tests.processor.core.test_deliveries import hook_workflow
from topics import codec
from topics.api import PublicWorkflow, SavedWorkflow, secret_hint


def test_a_hint_is_the_prefix_and_the_last_four_characters() -> None:
    assert secret_hint("whsec_abcdefghijklmnopqrstuvwxyz0123") == "whsec_…0123"
    assert secret_hint("no-prefix-secret-value-WXYZ") == "…WXYZ"
    assert secret_hint("averyverylongprefix_secret-1234") == "…1234"


def test_a_read_shows_no_secret() -> None:
    workflow = hook_workflow()
    secret = workflow.inbound_secrets[0].secret
    shown = codec.loads(codec.dumps(PublicWorkflow.of(workflow)))
    assert secret not in str(shown) and "inbound_secret" not in shown
    assert shown["inbound_secrets"] == [
        {"hint": secret_hint(secret), "created_at": "2026-11-25T19:00:01Z", "expires_at": None}
    ]
    # everything else is the workflow as saved
    saved = codec.loads(codec.dumps(workflow))
    assert {k: v for k, v in shown.items() if k != "inbound_secrets"} == {
        k: v for k, v in saved.items() if k != "inbound_secrets"
    }


def test_a_write_shows_the_secret_it_made_and_no_other() -> None:
    first = hook_workflow()
    created = _saved(first, None)
    assert isinstance(created, SavedWorkflow)
    assert created.inbound_secret == first.inbound_secrets[0].secret
    edited = with_secrets(first, first, NOW)
    assert not isinstance(_saved(edited, first), SavedWorkflow)
    assert "inbound_secret" not in codec.loads(codec.dumps(_saved(edited, first)))
    rotated = with_secrets(first, first, NOW, rotate_grace=60)
    answer = codec.loads(codec.dumps(_saved(rotated, first)))
    assert answer["inbound_secret"] == rotated.inbound_secrets[0].secret
    assert first.inbound_secrets[0].secret not in str(answer)
    assert [s["expires_at"] for s in answer["inbound_secrets"]] == [
        None,
        codec.loads(codec.dumps(NOW + timedelta(seconds=60))),
    ]


def test_the_openapi_document_says_so() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    assert "Workflow" not in schemas and "InboundSecret" not in schemas
    assert set(schemas["InboundSecretHint"]["properties"]) == {"hint", "created_at", "expires_at"}
    assert (
        "shown in this answer only"
        in schemas["SavedWorkflow"]["properties"]["inbound_secret"]["description"]
    )
    one = doc["paths"]["/api/v1/workflows/{workflow_id}"]

    def schema(operation: dict, status: str) -> str:
        return operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]

    assert schema(one["get"], "200").endswith("/PublicWorkflow")
    assert schema(one["put"], "200").endswith("/SavedWorkflow")
    assert schema(doc["paths"]["/api/v1/workflows"]["post"], "201").endswith("/SavedWorkflow")
    rotate = doc["paths"]["/api/v1/workflows/{workflow_id}/webhook-secret"]["post"]
    assert schema(rotate, "200").endswith("/SavedWorkflow")
    assert SavedWorkflow.model_fields["inbound_secret"].default is None

from __future__ import annotations

from processor.core.access import OPERATOR, mint
from processor.core.audit import token_change, workflow_change
from tests.factories import NOW, make_workflow
from topics import codec
from topics.catalog import API_TOKENS, AUDIT, DEFINITIONS, WORKFLOW_VERSIONS
from topics.workflows import InboundSecret


def test_a_saved_workflow_is_a_definition_a_version_and_an_audit_event() -> None:
    before = make_workflow(version=3)
    after = make_workflow(version=4, name="Renamed")
    definition, version, audit = workflow_change(
        "workflow.updated", before, after, OPERATOR.actor, NOW
    )
    assert (definition.topic, definition.key) == (DEFINITIONS, b"wf-welcome")
    assert (version.topic, version.key) == (WORKFLOW_VERSIONS, b"wf-welcome@4")
    assert definition.value == version.value == codec.dumps(after)
    event = codec.loads(audit.value)
    assert (audit.topic, audit.key) == (AUDIT, b"acme")
    assert event["audit_id"] == "workflow:wf-welcome:v4:workflow.updated"
    assert event["actor"] == {"kind": "operator", "token_id": None, "name": "operator"}
    assert (event["before"]["name"], event["after"]["name"]) == (before.name, "Renamed")


def test_a_delete_is_a_tombstone_and_an_audit_event_without_after() -> None:
    before = make_workflow(version=2)
    definition, audit = workflow_change("workflow.deleted", before, None, OPERATOR.actor, NOW)
    assert (definition.topic, definition.value) == (DEFINITIONS, None)
    event = codec.loads(audit.value)
    assert event["after"] is None and event["before"]["version"] == 2
    assert event["audit_id"] == "workflow:wf-welcome:v2:workflow.deleted"


def test_secrets_never_reach_the_audit_log() -> None:
    secret = InboundSecret(secret="s" * 32, created_at=NOW)
    after = make_workflow(
        trigger={"type": "webhook_received", "record_type": "lead"}, inbound_secrets=[secret]
    )
    *_, audit = workflow_change("workflow.created", None, after, OPERATOR.actor, NOW)
    assert b"s" * 32 not in audit.value
    assert codec.loads(audit.value)["after"]["inbound_secrets"] == [
        {"created_at": NOW.isoformat().replace("+00:00", "Z"), "expires_at": None}
    ]
    _, token = mint("acme", "read", "dash", "operator", NOW)
    stored, token_audit = token_change("token.created", None, token, OPERATOR.actor, NOW)
    assert stored.topic == API_TOKENS and token.secret_sha256.encode() in stored.value
    assert token.secret_sha256.encode() not in token_audit.value

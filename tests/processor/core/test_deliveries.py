from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from coeflow.errors import InboundRefused
from coeflow.settings import Settings
from coeflow.signing import signature_header
from processor.core.compiler import CompiledWorkflow, compile_workflow
from processor.core.deliveries import accept_delivery, delivery_event, with_secrets
from processor.core.pipeline import RUN_BY_DELIVERY
from tests.factories import NOW, make_workflow, source
from topics import codec
from topics.inbound import InboundDelivery
from topics.workflows import Workflow

BODY = b'{"order_id": "o-1", "total": 120}'


def hook_workflow(**overrides: Any) -> Workflow:
    fields: dict[str, Any] = {
        "id": "wf-hook",
        "status": "active",
        "trigger": {"type": "webhook_received"},
        "conditions": {"all": [{"field": "total", "op": "gte", "value": 100}]},
        "actions": [{"type": "add_note", "body": "Order {{record.order_id}}"}],
    }
    workflow = make_workflow(**{**fields, **overrides})
    return with_secrets(workflow, None, NOW)


def headers(workflow: Workflow, body: bytes = BODY, age: float = 0, **more: str) -> dict[str, str]:
    signed = int((NOW - timedelta(seconds=age)).timestamp())
    secret = workflow.inbound_secrets[0].secret
    return {"Coeflow-Signature": signature_header(secret, signed, body), **more}


def accept(
    compiled: CompiledWorkflow | None,
    hdrs: dict[str, str],
    body: bytes = BODY,
    seen: bool = False,
) -> InboundDelivery:
    return accept_delivery(
        compiled,
        workflow_id="wf-hook",
        headers=hdrs,
        body=body,
        now=NOW,
        tolerance=300,
        max_bytes=1024,
        seen=lambda w, d: seen,
    )


def test_a_signed_delivery_is_accepted() -> None:
    workflow = hook_workflow()
    delivery = accept(
        compile_workflow(workflow), headers(workflow, **{"Coeflow-Delivery-Id": "d-1"})
    )
    assert (delivery.delivery_id, delivery.tenant_id, delivery.received_at) == ("d-1", "acme", NOW)
    assert delivery.payload == {"order_id": "o-1", "total": 120}


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"body": b"x" * 2000}, 413, "limit is 1024"),
        ({"signature": None}, 401, "missing or malformed Coeflow-Signature"),
        ({"signature": "t=abc,v1=00"}, 401, "missing or malformed"),
        ({"age": 301}, 401, "must be signed within 300s"),
        ({"age": -301}, 401, "must be signed within 300s"),
        ({"tamper": True}, 401, "matches none of the workflow's current secrets"),
        ({"delivery": ""}, 400, "Coeflow-Delivery-Id header"),
        ({"seen": True}, 409, r"already received \(a replay\)"),
        ({"body": b"[1, 2]"}, 400, "must be a JSON object"),
        ({"body": b"{nope"}, 400, "not valid UTF-8 JSON"),
    ],
)
def test_refusals_say_why(change: dict[str, Any], status: int, reason: str) -> None:
    workflow = hook_workflow()
    body = change.get("body", BODY)
    hdrs = headers(workflow, body, age=change.get("age", 0))
    hdrs["Coeflow-Delivery-Id"] = change.get("delivery", "d-1")
    if "signature" in change:
        hdrs.pop("Coeflow-Signature")
        if change["signature"] is not None:
            hdrs["Coeflow-Signature"] = change["signature"]
    if change.get("tamper"):
        body = body.replace(b"120", b"999")
    with pytest.raises(InboundRefused, match=reason) as refused:
        accept(compile_workflow(workflow), hdrs, body, seen=change.get("seen", False))
    assert refused.value.status == status


def test_unknown_other_and_inactive_workflows_are_refused() -> None:
    with pytest.raises(InboundRefused, match="no inbound webhook") as missing:
        accept(None, {})
    assert missing.value.status == 404
    with pytest.raises(InboundRefused) as other:
        accept(compile_workflow(make_workflow(id="wf-hook")), {})
    assert other.value.status == 404
    inactive = hook_workflow(status="inactive")
    hdrs = headers(inactive, **{"Coeflow-Delivery-Id": "d-1"})
    with pytest.raises(InboundRefused, match="is inactive, not active") as refused:
        accept(compile_workflow(inactive), hdrs)
    assert refused.value.status == 409


def test_rotation_keeps_the_old_secret_for_the_grace_period_only() -> None:
    first = hook_workflow()
    rotated = with_secrets(first, first, NOW, rotate_grace=60)
    new, old = rotated.inbound_secrets
    assert old.secret == first.inbound_secrets[0].secret and new.secret != old.secret
    assert old.expires_at == NOW + timedelta(seconds=60) and new.expires_at is None
    by_old = headers(first, **{"Coeflow-Delivery-Id": "d-1"})
    assert accept(compile_workflow(rotated), by_old).delivery_id == "d-1"
    later = rotated.inbound_secrets  # after the grace period the old secret is refused
    assert not later[1].live(NOW + timedelta(seconds=61))
    again = with_secrets(rotated, rotated, NOW + timedelta(seconds=61))
    assert [s.secret for s in again.inbound_secrets] == [new.secret]


def test_saving_keeps_secrets_and_other_triggers_carry_none() -> None:
    first = hook_workflow()
    assert with_secrets(first, first, NOW).inbound_secrets == first.inbound_secrets
    moved = first.model_copy(update={"trigger": make_workflow().trigger})
    assert with_secrets(moved, first, NOW).inbound_secrets == []


def test_a_delivery_becomes_a_run_of_its_workflow_with_the_payload_as_record(
    settings: Settings,
) -> None:
    workflow = hook_workflow()
    compiled = compile_workflow(workflow)
    delivery = accept(compiled, headers(workflow, **{"Coeflow-Delivery-Id": "d-7"}))
    event = delivery_event(delivery)
    assert (event.record_type, event.record_id, event.after) == ("webhook", "d-7", delivery.payload)

    def compiled_of(workflow_id: str) -> CompiledWorkflow | None:
        return compiled if workflow_id == "wf-hook" else None

    outcome = RUN_BY_DELIVERY.process(
        b"wf-hook", codec.dumps(delivery), source(), compiled_of, settings, NOW
    )
    [run] = outcome.runs
    assert run.record.status == "actions_issued" and run.record.trigger == "webhook_received"
    assert run.commands[0].params == {"body": "Order o-1"}
    again = RUN_BY_DELIVERY.process(
        b"wf-hook", codec.dumps(delivery), source(), compiled_of, settings, NOW
    )
    assert again.runs[0].record.run_id == run.record.run_id  # a repeat is recognisable

    bad = RUN_BY_DELIVERY.process(b"wf-hook", b"{nope", source(), compiled_of, settings, NOW)
    assert bad.dead_letter is not None and "not a valid InboundDelivery" in bad.dead_letter.error
    gone = RUN_BY_DELIVERY.process(
        b"wf-x", codec.dumps(delivery), source(), lambda w: None, settings, NOW
    )
    assert gone.messages == [] and gone.runs == []


def test_a_webhook_keeps_at_most_three_live_secrets_however_often_it_rotates() -> None:
    from processor.core.deliveries import MAX_LIVE_SECRETS, with_secrets
    from tests.factories import NOW, make_workflow

    workflow = make_workflow(trigger={"type": "webhook_received"}, conditions=None)
    current = with_secrets(workflow, None, NOW)
    for _ in range(20):
        current = with_secrets(current, current, NOW, rotate_grace=86_400)
    assert len(current.inbound_secrets) == MAX_LIVE_SECRETS == 3
    assert current.inbound_secrets[0].expires_at is None, "the newest first, without an end"


def test_a_captured_delivery_sent_again_under_a_new_id_is_a_replay() -> None:
    """The delivery id is not signed; the signature is, and it is remembered with the ids."""
    from processor.inbound_webhooks import DeliveryReplica

    workflow = hook_workflow()
    compiled = compile_workflow(workflow)
    replica = DeliveryReplica(Settings(_env_file=None))  # type: ignore[call-arg]
    signed = headers(workflow)

    def deliver(delivery_id: str) -> InboundDelivery:
        return accept_delivery(
            compiled,
            workflow_id="wf-hook",
            headers={**signed, "Coeflow-Delivery-Id": delivery_id},
            body=BODY,
            now=NOW,
            tolerance=300,
            max_bytes=1024,
            seen=replica.seen,
        )

    first = deliver("orig")
    assert first.signature is not None
    replica.on_value(None, first)
    with pytest.raises(InboundRefused) as refused:
        deliver("orig-1")
    assert refused.value.status == 409 and "signature was already received" in str(refused.value)


def test_a_replay_signed_with_the_other_secret_of_a_rotation_is_refused_too() -> None:
    """During a rotation a sender signs with both secrets; a replay carrying only the other
    signature is the same signed content."""
    from processor.inbound_webhooks import DeliveryReplica

    before = hook_workflow()
    rotated = with_secrets(before, before, NOW, rotate_grace=3600)
    compiled = compile_workflow(rotated)
    new, old = (s.secret for s in rotated.inbound_secrets[:2])
    t = int(NOW.timestamp())
    both = f"{signature_header(new, t, BODY)},v1={signature_header(old, t, BODY).split('v1=')[1]}"
    replica = DeliveryReplica(Settings(_env_file=None))  # type: ignore[call-arg]

    def deliver(signature: str, delivery_id: str) -> InboundDelivery:
        hdrs = {"Coeflow-Signature": signature, "Coeflow-Delivery-Id": delivery_id}
        return accept_delivery(
            compiled,
            workflow_id="wf-hook",
            headers=hdrs,
            body=BODY,
            now=NOW,
            tolerance=300,
            max_bytes=1024,
            seen=replica.seen,
        )

    replica.on_value(None, deliver(both, "d-1"))
    with pytest.raises(InboundRefused, match="signature was already received"):
        deliver(signature_header(old, t, BODY), "d-2")

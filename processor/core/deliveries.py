"""Inbound webhooks: which deliveries are accepted, and the event a delivery becomes.

A delivery is accepted only if it is small enough, addressed to an active Webhook Received
workflow, signed (``Coeflow-Signature: t=<unix time>,v1=<hex>``, HMAC-SHA256 over
``<t>.<raw body>`` with one of the workflow's live secrets), signed within the tolerance of
our clock, carries a ``Coeflow-Delivery-Id`` not seen before, and its body is a JSON object
nested at most ``MAX_NESTING`` levels deep.
The checks run cheapest and least revealing first: nothing about a workflow's state is said
to a caller that cannot sign.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import orjson

from coeflow.errors import InboundRefused
from coeflow.signing import parse_header, signature
from processor.core.compiler import CompiledWorkflow
from topics import codec
from topics.events import ChangeEvent
from topics.inbound import WEBHOOK_RECORD_TYPE, InboundDelivery
from topics.types import MAX_NESTING, within_nesting
from topics.workflows import InboundSecret, Workflow

SIGNATURE_HEADER = "Coeflow-Signature"
DELIVERY_HEADER = "Coeflow-Delivery-Id"
TRIGGER = "webhook_received"
_MAX_DELIVERY_ID = 200


def accept_delivery(
    compiled: CompiledWorkflow | None,
    *,
    workflow_id: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: float,
    max_bytes: int,
    seen: Callable[[str, str], bool],
) -> InboundDelivery:
    """The delivery to publish, or ``InboundRefused`` with the status and the reason."""
    if len(body) > max_bytes:
        raise InboundRefused(413, f"the body has {len(body)} bytes; the limit is {max_bytes}")
    if compiled is None or compiled.kind.name != TRIGGER:
        raise InboundRefused(404, f"no inbound webhook for workflow {workflow_id!r}")
    workflow = compiled.workflow
    signed_at = _check_signature(workflow, headers.get(SIGNATURE_HEADER), body, now, tolerance)
    if workflow.status != "active":
        raise InboundRefused(409, f"workflow {workflow_id!r} is {workflow.status}, not active")
    delivery_id = headers.get(DELIVERY_HEADER, "").strip()
    if not delivery_id or len(delivery_id) > _MAX_DELIVERY_ID:
        raise InboundRefused(
            400, f"a {DELIVERY_HEADER} header of 1 to {_MAX_DELIVERY_ID} characters is required"
        )
    if seen(workflow_id, delivery_id):
        raise InboundRefused(409, f"delivery {delivery_id!r} was already received (a replay)")
    fingerprint = f"{signed_at.timestamp():.0f}:{hashlib.sha256(body).hexdigest()}"
    if seen(workflow_id, signature_key(fingerprint)):
        # The id is not signed: a captured delivery sent again under a new id is this.
        raise InboundRefused(
            409, "this signature was already received with another delivery id (a replay)"
        )
    try:
        payload = codec.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InboundRefused(400, f"the body is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InboundRefused(400, "the body must be a JSON object")
    if not within_nesting(payload):
        # Refused for good (a 4xx the sender does not retry): the delivery could not be
        # encoded for the topic (our JSON encoder stops at 254 levels), nor its run's record.
        raise InboundRefused(
            422, f"the body nests objects and arrays more than {MAX_NESTING} levels deep"
        )
    return InboundDelivery(
        delivery_id=delivery_id,
        workflow_id=workflow_id,
        tenant_id=workflow.tenant_id,
        signed_at=signed_at,
        received_at=now,
        payload=payload,
        signature=fingerprint,
    )


def signature_key(fingerprint: str) -> str:
    """How a delivery's signed content (its ``t`` and the SHA-256 of its body, whichever secret
    signed it: a sender signs with two during a rotation) is remembered beside the delivery
    ids."""
    return f"sig:{fingerprint}"


def _check_signature(
    workflow: Workflow, header: str | None, body: bytes, now: datetime, tolerance: float
) -> datetime:
    """When the delivery was signed, if one of the workflow's live secrets signed it."""
    parsed = parse_header(header or "")
    if parsed is None:
        raise InboundRefused(
            401,
            f"missing or malformed {SIGNATURE_HEADER} header "
            "(t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<raw body>'>)",
        )
    # In seconds, not datetimes: a ``t`` past year 9999 is a refusal, not an OverflowError.
    skew = abs(now.timestamp() - parsed[0])
    if skew > tolerance:
        raise InboundRefused(
            401,
            f"signed at t={parsed[0]}, {skew:.0f}s from this server's clock; "
            f"deliveries must be signed within {tolerance:g}s",
        )
    signed_at = datetime.fromtimestamp(parsed[0], UTC)
    for secret in (s.secret for s in workflow.inbound_secrets if s.live(now)):
        expected = signature(secret, parsed[0], body)
        if any(hmac.compare_digest(given, expected) for given in parsed[1]):
            return signed_at
    raise InboundRefused(401, "the signature matches none of the workflow's current secrets")


def delivery_event(delivery: InboundDelivery) -> ChangeEvent:
    """The event a run of the workflow sees: the payload is the record (``{{record.x}}``)."""
    return ChangeEvent(
        event_id=delivery.event_id,
        tenant_id=delivery.tenant_id,
        record_type=WEBHOOK_RECORD_TYPE,
        record_id=delivery.delivery_id,
        operation="created",
        occurred_at=delivery.received_at,
        before=None,
        after=delivery.payload,
    )


MAX_LIVE_SECRETS = 3
"""Secrets a workflow's inbound webhook accepts at once: the newest and the two before it during
their grace (a rotation past that ends the oldest at once). Every check tries each one, and
every version of the workflow carries them."""


def with_secrets(
    workflow: Workflow,
    current: Workflow | None,
    now: datetime,
    *,
    rotate_grace: float | None = None,
) -> Workflow:
    """``workflow`` with the inbound secrets it should carry: none unless its trigger is
    Webhook Received; else the current ones (a new one if there are none), and on rotation a
    new one first while the others live on for ``rotate_grace`` seconds at most."""
    if workflow.trigger.type != TRIGGER:
        return workflow.model_copy(update={"inbound_secrets": []})
    kept = [s for s in (current.inbound_secrets if current else []) if s.live(now)]
    if rotate_grace is not None:
        until = now + timedelta(seconds=rotate_grace)
        kept = [
            s.model_copy(update={"expires_at": min(s.expires_at or until, until)}) for s in kept
        ]
        kept = [s for s in kept if s.live(now)]
    if rotate_grace is not None or not kept:
        kept.insert(0, InboundSecret(secret=f"whsec_{secrets.token_urlsafe(32)}", created_at=now))
    return workflow.model_copy(update={"inbound_secrets": kept[:MAX_LIVE_SECRETS]})

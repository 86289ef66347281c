"""Deliveries that used to be a 500 (and a traceback) are refusals with a reason: a signature
time past year 9999 or too long to be a number, odd digits, and bodies nested too deep for
the topic."""

from __future__ import annotations

import pytest

from coeflow.errors import InboundRefused
from coeflow.signing import signature_header
from processor.core.compiler import compile_workflow
from tests.factories import NOW
from tests.processor.core.test_deliveries import accept, headers, hook_workflow
from topics import codec
from topics.types import MAX_NESTING


@pytest.mark.parametrize(
    "signature",
    [
        "t=253402300800,v1=00",  # year 10000: datetime cannot hold it
        "t=" + "9" * 5000 + ",v1=00",
        "t=²,v1=00",
        f"t={int(NOW.timestamp())},v1=é",
    ],
)
def test_a_signature_no_clock_can_show_is_a_401(signature: str) -> None:
    workflow = hook_workflow()
    with pytest.raises(InboundRefused) as refused:
        accept(compile_workflow(workflow), {"Coeflow-Signature": signature})
    assert refused.value.status == 401


def nested(depth: int) -> bytes:
    """A JSON object whose one field nests ``depth`` levels in all."""
    return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_a_body_nested_past_the_limit_is_refused_for_good() -> None:
    workflow = hook_workflow()
    compiled = compile_workflow(workflow)
    deep = nested(300)
    with pytest.raises(InboundRefused, match=f"more than {MAX_NESTING} levels") as refused:
        accept(compiled, headers(workflow, deep, **{"Coeflow-Delivery-Id": "d-1"}), deep)
    assert refused.value.status == 422
    at_limit = nested(MAX_NESTING)
    hdrs = headers(workflow, at_limit, **{"Coeflow-Delivery-Id": "d-2"})
    delivery = accept(compiled, hdrs, at_limit)
    assert codec.loads(codec.dumps(delivery))["payload"] == codec.loads(at_limit)


def test_a_signature_far_in_the_future_says_when_it_was_signed() -> None:
    workflow = hook_workflow()
    secret = workflow.inbound_secrets[0].secret
    hdrs = {"Coeflow-Signature": signature_header(secret, 253402300800, b"{}")}
    with pytest.raises(InboundRefused, match="signed at t=253402300800"):
        accept(compile_workflow(workflow), hdrs, b"{}")

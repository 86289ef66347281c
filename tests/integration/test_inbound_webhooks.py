"""The Webhook Received trigger through a worker and the broker: signed deliveries run the
workflow; unsigned, stale, replayed and oversized ones are refused and publish nothing."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from coeflow.signing import signature_header
from coeflow.tools.processes import WorkerProcess
from tests.integration.harness import Api, Peers, read_until, tenant, until
from topics import codec
from topics.catalog import INBOUND_WEBHOOKS, RUNS

pytestmark = pytest.mark.integration


async def post(
    worker: WorkerProcess,
    workflow_id: str,
    body: bytes,
    *,
    secret: str,
    delivery: str,
    signed_at: float | None = None,
) -> tuple[int, dict[str, Any]]:
    timestamp = int(signed_at if signed_at is not None else time.time())
    headers = {
        "Coeflow-Signature": signature_header(secret, timestamp, body),
        "Coeflow-Delivery-Id": delivery,
        "Content-Type": "application/json",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{worker.url}/hooks/{workflow_id}", data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_signed_deliveries_run_the_workflow_and_bad_ones_publish_nothing(
    api: Api, bootstrap: str, peers: Peers, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    created = await api.create(
        {
            "id": f"wf-orders-{acme}",
            "tenant_id": acme,
            "name": "Big order → Slack",
            "status": "active",
            "trigger": {"type": "webhook_received"},
            "conditions": {"all": [{"field": "order.total", "op": "gte", "value": 100}]},
            "actions": [
                {
                    "type": "send_slack_message",
                    "webhook_url": peers.http.url(f"/ok/orders-{acme}"),
                    "text": "Order {{record.order.id}}: {{record.order.total}}",
                }
            ],
        }
    )
    workflow_id, secret = created["id"], created["inbound_secret"]
    body = codec.dumps({"order": {"id": "o-1", "total": 250}})

    first_at = int(time.time())
    status, answer = await post(
        shared_worker, workflow_id, body, secret=secret, delivery="d-1", signed_at=first_at
    )
    assert (status, answer) == (202, {"accepted": True, "delivery_id": "d-1"})

    refused = [
        await post(
            shared_worker, workflow_id, body, secret="whsec_wrong-secret-000", delivery="d-2"
        ),
        await post(
            shared_worker,
            workflow_id,
            body,
            secret=secret,
            delivery="d-3",
            signed_at=time.time() - 600,
        ),
        await post(shared_worker, workflow_id, body, secret=secret, delivery="d-1"),
        # d-1 captured and sent again under a new id: the id is not signed, the signature is.
        await post(
            shared_worker, workflow_id, body, secret=secret, delivery="d-8", signed_at=first_at
        ),
        await post(
            shared_worker,
            workflow_id,
            b'{"x": "' + b"y" * 300_000 + b'"}',
            secret=secret,
            delivery="d-4",
        ),
        await post(shared_worker, f"wf-none-{acme}", body, secret=secret, delivery="d-5"),
    ]
    assert [s for s, _ in refused] == [401, 401, 409, 409, 413, 404]
    assert "matches none" in refused[0][1]["error"]
    assert "must be signed within 300s" in refused[1][1]["error"]
    assert "already received" in refused[2][1]["error"]
    assert "signature was already received with another delivery id" in refused[3][1]["error"]

    # Rotation: the new secret works, and the old one during its grace period.
    status, rotated = await api.call(
        "POST", f"/api/v1/workflows/{workflow_id}/webhook-secret", {"grace_seconds": 3600}
    )
    assert status == 200 and len(rotated["inbound_secrets"]) == 2
    new_secret = rotated["inbound_secret"]
    assert new_secret != secret
    new_secret_answer = await post(  # signed at another second: the same body, but not a replay
        shared_worker, workflow_id, body, secret=new_secret, delivery="d-6", signed_at=first_at - 2
    )
    assert new_secret_answer[0] == 202
    old_secret_again = await post(  # the same body again, signed at another second: new
        shared_worker, workflow_id, body, secret=secret, delivery="d-7", signed_at=first_at - 1
    )
    assert old_secret_again[0] == 202

    accepted = await read_until(
        bootstrap,
        [INBOUND_WEBHOOKS],
        lambda rs: {r.value["delivery_id"] for r in rs} >= {"d-1", "d-6", "d-7"},
        keep=lambda r: r.key == workflow_id.encode(),
    )
    assert sorted(r.value["delivery_id"] for r in accepted) == ["d-1", "d-6", "d-7"]
    runs = await read_until(
        bootstrap,
        [RUNS],
        lambda rs: len(rs) >= 3,
        keep=lambda r: (
            r.value.get("workflow_id") == workflow_id and not r.value.get("completed_at")
        ),
    )
    assert {(r.value["trigger"], r.value["status"], r.value["record"]["type"]) for r in runs} == {
        ("webhook_received", "actions_issued", "webhook")
    }
    assert sorted(r.value["record"]["id"] for r in runs) == ["d-1", "d-6", "d-7"]
    delivered = await until(lambda: len(peers.http.to(f"/ok/orders-{acme}")) == 3)
    assert delivered and {r.body for r in peers.http.to(f"/ok/orders-{acme}")} == {
        b'{"text":"Order o-1: 250"}'
    }

"""Inbound webhooks in a worker: the URL that accepts deliveries (``register_endpoint``, with
the api role), and the agent that runs them (``register_agent``, with the processor role).

``POST /hooks/{workflow_id}`` checks a delivery (``processor/core/deliveries.py``), publishes it to
``workflow.inbound-webhooks`` and answers 202 once this worker has read it back; anything else
gets its 4xx with the reason and publishes nothing. Every worker with the api role keeps the
delivery ids of the recent past (``DeliveryReplica``): older deliveries are refused by their
timestamp anyway, so that window is all a replay check needs. Two workers that receive the
same delivery within the replica's lag may both publish it; the run id comes from the
delivery id, so the repeat is recognised downstream like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import faust
from aiohttp.web import HTTPRequestEntityTooLarge
from faust.web import Request, Response, View

from coeflow.errors import InboundRefused
from coeflow.settings import Settings
from processor.agents import one_workflow, register_runs_agent
from processor.core.deliveries import accept_delivery, signature_key
from processor.core.pipeline import RUN_BY_DELIVERY
from processor.replica import ModelReplica
from processor.runtime import Runtime
from topics import codec
from topics.catalog import INBOUND_WEBHOOKS
from topics.inbound import InboundDelivery

log = logging.getLogger(__name__)

_VISIBLE_WITHIN = 10.0


class DeliveryReplica(ModelReplica[InboundDelivery]):
    """The (workflow, delivery id) pairs received in the last ``window``, and (workflow,
    ``signature_key``) pairs: an id is not signed, the signature is."""

    topic = INBOUND_WEBHOOKS
    read_back = True
    model = InboundDelivery

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.window = timedelta(seconds=2 * settings.inbound_webhook_tolerance)
        self._seen: OrderedDict[tuple[str, str], datetime] = OrderedDict()

    def on_value(self, key: bytes | None, delivery: InboundDelivery) -> None:
        self._seen[(delivery.workflow_id, delivery.delivery_id)] = delivery.received_at
        if delivery.signature is not None:
            self._seen[(delivery.workflow_id, signature_key(delivery.signature))] = (
                delivery.received_at
            )
        cutoff = delivery.received_at - self.window
        while self._seen and next(iter(self._seen.values())) < cutoff:
            self._seen.popitem(last=False)

    def seen(self, workflow_id: str, delivery_id: str) -> bool:
        return (workflow_id, delivery_id) in self._seen

    def describe(self) -> str:
        return f"{len(self._seen)} recent deliveries"


def register_endpoint(app: faust.App, runtime: Runtime) -> None:
    """``POST /hooks/{workflow_id}`` and its replay check (the api role): it publishes a
    delivery and decides nothing; the agent that runs it is ``register_agent``'s."""
    settings = runtime.settings
    replica = DeliveryReplica(settings, loop=app.loop)
    app.add_dependency(replica)
    accepting = asyncio.Lock()  # one check-and-publish at a time: a replay waits for the first

    @app.page("/hooks/{workflow_id}")
    class InboundWebhook(View):
        def get_methods(self) -> set[str]:
            return {"POST"}  # not Faust's HEAD too: that would be a 405 without ``Allow``

        async def post(self, request: Request, workflow_id: str) -> Response:
            try:
                try:
                    body = await request.read()
                except HTTPRequestEntityTooLarge as exc:  # past aiohttp's client_max_size
                    raise InboundRefused(413, exc.text or "the body is too large") from None
                async with accepting:
                    delivery = accept_delivery(
                        runtime.catalog.compiled(workflow_id),
                        workflow_id=workflow_id,
                        headers=request.headers,
                        body=body,
                        now=runtime.clock(),
                        tolerance=settings.inbound_webhook_tolerance,
                        max_bytes=settings.inbound_webhook_max_bytes,
                        seen=replica.seen,
                    )
                    stored = await app.producer.send_and_wait(
                        INBOUND_WEBHOOKS,
                        workflow_id.encode(),
                        codec.dumps(delivery),
                        None,
                        None,
                        None,
                    )
                    await replica.wait_applied(stored.partition, stored.offset, _VISIBLE_WITHIN)
            except InboundRefused as refused:
                # The id is the caller's text: %r keeps its control characters escaped.
                log.info(
                    "inbound webhook %r refused (%d): %s", workflow_id, refused.status, refused
                )
                return self._json({"error": str(refused)}, refused.status)
            return self._json({"accepted": True, "delivery_id": delivery.delivery_id}, 202)

        def _json(self, body: Any, status: int) -> Response:
            return self.bytes(codec.dumps(body), content_type="application/json", status=status)


def register_agent(app: faust.App, runtime: Runtime) -> None:
    """The agent that runs the deliveries on ``workflow.inbound-webhooks`` (the processor
    role), whichever worker's URL accepted them."""
    register_runs_agent(
        app,
        runtime,
        INBOUND_WEBHOOKS,
        "inbound-webhooks",
        one_workflow(RUN_BY_DELIVERY),
        fenced=True,
    )

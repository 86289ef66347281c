"""Send each event's outputs without waiting, and acknowledge the event once all are stored.

Waiting for the broker after every event costs a round trip per event. Instead the agent
hands each event's outputs to ``Deliveries`` and moves on; the event is acknowledged from a
callback once the broker has stored every one of its outputs. Faust commits only the
contiguous acknowledged prefix of each partition, so an event whose outputs are still in
flight holds back the commit of everything after it: nothing is committed undelivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from aiokafka.errors import KafkaError
from faust.types import AppT

from coeflow.settings import Settings
from processor.core.pipeline import Outbound, Outcome, dead_letter, source_of

log = logging.getLogger(__name__)

Send = Callable[[Outbound], Awaitable[Awaitable[Any]]]
"""Queue one message with the producer; the returned future resolves once it is stored."""


def dead_letter_fallback(message: Any, settings: Settings, now: datetime) -> Fallback:
    """The ``Fallback`` for outputs of ``message`` (a Faust message) that the broker refuses:
    a dead letter of the message itself, so it is accounted for."""
    return partial(
        dead_letter, message.key, message.value, source_of(message), settings=settings, now=now
    )


def producer_send(app: AppT) -> Send:
    """``Send`` through the app's producer (created on first use)."""

    async def send(message: Outbound) -> Awaitable[Any]:
        return await app.producer.send(message.topic, message.key, message.value, None, None, None)

    return send


Fallback = Callable[[str], Outcome]
"""Builds the dead letter that replaces outputs the broker refuses for good."""

MAX_EVENTS_IN_FLIGHT = 1000
_RETRY_FIRST, _RETRY_MAX = 0.2, 5.0


class Deliveries:
    def __init__(self, send: Send, max_in_flight: int = MAX_EVENTS_IN_FLIGHT) -> None:
        self._send, self._max = send, max_in_flight
        self._in_flight = 0
        self._room = asyncio.Event()
        self._room.set()
        self._retries: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def submit(
        self, messages: Sequence[Outbound], on_stored: Callable[[], object], fallback: Fallback
    ) -> None:
        """Send ``messages``; ``on_stored`` runs once the broker has them all (at once if none).

        Waits only while too many events are in flight (backpressure)."""
        if not messages:
            on_stored()
            return
        while self._in_flight >= self._max:
            self._room.clear()
            await self._room.wait()
        self._in_flight += 1
        try:
            futures = [await self._send(m) for m in messages]
        except KafkaError:  # refused before sending (too large, no connection): retry slowly
            self._retry(messages, on_stored, fallback)
            return
        stored = asyncio.gather(*futures, return_exceptions=True)
        stored.add_done_callback(partial(self._settle, messages, on_stored, fallback))

    def _settle(
        self,
        messages: Sequence[Outbound],
        on_stored: Callable[[], object],
        fallback: Fallback,
        stored: asyncio.Future[list[Any]],
    ) -> None:
        if not stored.cancelled() and not any(
            isinstance(r, BaseException) for r in stored.result()
        ):
            self._done(on_stored)
        else:
            self._retry(messages, on_stored, fallback)

    def _retry(
        self, messages: Sequence[Outbound], on_stored: Callable[[], object], fallback: Fallback
    ) -> None:
        async def redeliver() -> None:
            await deliver(self._send, messages, fallback)
            self._done(on_stored)

        task = asyncio.ensure_future(redeliver())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    def _done(self, on_stored: Callable[[], object]) -> None:
        on_stored()
        self._in_flight -= 1
        self._room.set()


async def deliver(
    send: Send, messages: Sequence[Outbound], fallback: Fallback | None = None
) -> None:
    """Send ``messages`` and wait until the broker has them all, retrying while it cannot.

    A permanent refusal (say, a message too large for the broker) sends a dead letter from
    ``fallback`` instead, so the event is accounted for rather than retried forever. Outputs
    the broker already stored stay stored: without transactions they cannot be taken back.
    """
    delay = _RETRY_FIRST
    while True:
        try:
            futures = [await send(m) for m in messages]
            await asyncio.gather(*futures)
            return
        except KafkaError as exc:
            if not exc.retriable and fallback is not None:
                log.error("the broker refused an event's outputs (%s); dead-lettering it", exc)
                messages = fallback(
                    f"outputs refused by the broker: {type(exc).__name__}: {exc}"
                ).messages
                fallback = None
                continue
            log.warning(
                "delivery failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

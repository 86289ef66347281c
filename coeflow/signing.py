"""Webhook signatures, Stripe-style: HMAC-SHA256 over ``t.body``, both ways.

We sign outbound deliveries (Call Webhook) and check inbound ones (the Webhook Received
trigger) the same way: the receiver recomputes ``hmac_sha256(secret, f"{t}.{raw body}")``,
compares it in constant time with ``v1`` and refuses timestamps too far from its clock, which
stops replays of old deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "Coeflow-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_TIMESTAMP_DIGITS = 12
"""Unix seconds up to year 33658: longer ``t`` values are no signature."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


_TIMESTAMP = re.compile(f"[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}")
_HEX = re.compile(r"[0-9a-fA-F]{1,128}")


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """``t`` and every ``v1`` of a signature header, or ``None`` if it is not one.

    ``t`` is ASCII digits only (``str.isdigit`` also takes '²', which ``int`` refuses), and
    short (a 5,000-digit ``int`` is refused too, and slow); each ``v1`` is ASCII hex (a
    non-ASCII ``str`` makes ``hmac.compare_digest`` raise). Anything else is no signature."""
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif name == "v1" and _HEX.fullmatch(value):
            signatures.append(value)
    return (timestamp, signatures) if timestamp is not None and signatures else None


def verify(secret: str, header: str, body: bytes) -> bool:
    """True when ``header`` (``t=...,v1=...``) signs ``body`` with ``secret``."""
    parsed = parse_header(header)
    if parsed is None:
        return False
    timestamp, given = parsed
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(v, expected) for v in given)

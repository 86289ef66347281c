"""Webhook signatures, Stripe-style: HMAC-SHA256 over ``t.body``, both ways.

We sign outbound deliveries (Call Webhook) and check inbound ones (the Webhook Received
trigger) the same way: the receiver recomputes ``hmac_sha256(secret, f"{t}.{raw body}")``,
compares it in constant time with ``v1`` and refuses timestamps too far from its clock, which
stops replays of old deliveries.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Coeflow-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """``t`` and every ``v1`` of a signature header, or ``None`` if it is not one."""
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
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

"""Signatures of outbound webhook deliveries, Stripe-style: HMAC-SHA256 over ``t.body``.

A receiver recomputes ``hmac_sha256(secret, f"{t}.{raw body}")``, compares it in constant time
with ``v1`` and refuses timestamps too far from its clock, which stops replays.
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


def verify(secret: str, header: str, body: bytes) -> bool:
    """True when ``header`` (``t=...,v1=...``) signs ``body`` with ``secret``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, given = fields.get("t", ""), fields.get("v1", "")
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(given, signature(secret, int(timestamp), body))

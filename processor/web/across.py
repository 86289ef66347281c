"""Across workflows: the audit log (a tenant's) and the dead letters (the operator's)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from processor.web.pages import Page, Redirect, page
from processor.web.workflows import MAX_FILTER

PER_PAGE = 50
PREVIEW_BYTES = 2048
"""Of a dead letter's message, shown as text (the rest is in the API's answer)."""


def _preview(letter: dict[str, Any]) -> str | None:
    """The start of a dead letter's message as text (bytes that are not UTF-8 replaced)."""
    encoded = letter.get("value_base64")
    if not isinstance(encoded, str):
        return None
    try:
        raw = base64.b64decode(encoded[: (PREVIEW_BYTES // 3 + 1) * 4], validate=False)
    except ValueError:
        return None
    return raw[:PREVIEW_BYTES].decode("utf-8", errors="replace")


def _older(page: Page, next_cursor: str | None, *names: str) -> str | None:
    if not next_cursor:
        return None
    keep = {n: page.query[n] for n in names if page.query.get(n)}
    return urlencode({**keep, "cursor": next_cursor})


@page("/audit")
async def audit(page: Page) -> web.StreamResponse:
    if page.tenant_id is None:
        raise Redirect("/tenant")
    subject = page.query.get("subject_id", "").strip()[:MAX_FILTER]
    cursor = page.query.get("cursor", "").strip()[:64]
    got = await page.require(
        page.api.get(
            "/audit",
            **page.tenant_query,
            subject_id=subject or None,
            cursor=cursor or None,
            limit=PER_PAGE,
        )
    )
    return page.render(
        "audit.html",
        events=got["events"],
        subject=subject,
        older=_older(page, got.get("next_cursor"), "subject_id"),
    )


@page("/dead-letters", operator_only=True)
async def dead_letters(page: Page) -> web.StreamResponse:
    topic = page.query.get("topic", "").strip()[:MAX_FILTER]
    cursor = page.query.get("cursor", "").strip()[:64]
    got = await page.require(
        page.api.get("/dead-letters", topic=topic or None, cursor=cursor or None, limit=PER_PAGE)
    )
    return page.render(
        "dead_letters.html",
        letters=[{**letter, "preview": _preview(letter)} for letter in got["dead_letters"]],
        topic=topic,
        older=_older(page, got.get("next_cursor"), "topic"),
    )

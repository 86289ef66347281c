"""The audit log (who changed what, when: a tenant's, or one workflow's for its Versions tab)
and the dead letters (the operator's). Served from this worker's recent copies of the two
topics (``processor/admin_logs.py``)."""

from __future__ import annotations

from datetime import datetime

from faust.web import Request, Response

from coeflow.errors import Forbidden
from processor.api.views import ApiView, operation, route
from topics.api import AuditEntry, AuditPage, AuditQuery, DeadLetterPage, DeadLetterQuery
from topics.audit import AuditEvent
from topics.dead_letter import DeadLetter


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or at >= since) and (until is None or at < until)


def _entry(event: AuditEvent) -> AuditEntry:
    state = event.after or event.before or {}
    version = state.get("version") if event.subject_type == "workflow" else None
    return AuditEntry.model_construct(
        **dict(event), version=version if type(version) is int else None
    )


@route("/audit")
class Audit(ApiView):
    @operation(
        "The audit log, newest first: who changed which workflow or token, when, and the "
        "state before and after (without secrets)",
        query=AuditQuery,
        response=AuditPage,
    )
    async def get(self, request: Request) -> Response:
        asked, tenant = self.scoped_query(request, AuditQuery)
        log = self.admin.audit.kept

        def wanted(event: AuditEvent) -> bool:
            return (
                (asked.subject_type is None or event.subject_type == asked.subject_type)
                and (asked.subject_id is None or event.subject_id == asked.subject_id)
                and (asked.action is None or event.action == asked.action)
                and _within(event.at, asked.since, asked.until)
            )

        page = log.page(
            [tenant] if tenant is not None else log.lanes(),
            limit=asked.limit,
            where=wanted,
            cursor=asked.cursor,
        )
        principal = self.principal(request)
        events = [_entry(e) for e in page.items if principal.sees(e.tenant_id)]
        return self.reply(AuditPage(events=events, next_cursor=page.next_cursor))


@route("/dead-letters")
class DeadLetters(ApiView):
    @operation(
        "The dead letters, newest first: each message that could not be processed, where it "
        "was read and why (the operator's token only: a letter belongs to no one tenant)",
        scope="admin",
        query=DeadLetterQuery,
        response=DeadLetterPage,
    )
    async def get(self, request: Request) -> Response:
        if self.principal(request).tenant_id is not None:
            raise Forbidden("the dead letters are the operator's: they hold any tenant's messages")
        asked = self.query(request, DeadLetterQuery)
        replica = self.admin.dead_letters

        def wanted(letter: DeadLetter) -> bool:
            return (asked.topic is None or letter.source.topic == asked.topic) and _within(
                letter.failed_at, asked.since, asked.until
            )

        page = replica.kept.page(
            replica.lanes(), limit=asked.limit, where=wanted, cursor=asked.cursor
        )
        return self.reply(DeadLetterPage(dead_letters=page.items, next_cursor=page.next_cursor))

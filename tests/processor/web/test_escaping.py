"""Whatever a CRM user writes into a record, and whatever a workflow is named, renders as
text: the pages' structure (their tags and attributes) is the same as with plain words."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.web.pages import templates


class Structure(HTMLParser):
    """Each tag with its attribute names, in order: what markup in a value would change."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(name for name, _ in attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(("/" + tag, ()))


def structure(html: str) -> list[tuple[str, tuple[str, ...]]]:
    parser = Structure()
    parser.feed(html)
    parser.close()
    return parser.tags


def run(text: str) -> dict[str, Any]:
    record = {"name": text, "note": {"nested": [text, 1]}, text[:30] or "k": text}
    return {
        "run_id": "run-1",
        "tenant_id": "acme",
        "workflow_id": "wf-1",
        "workflow_version": 2,
        "workflow_name": text,
        "event_id": "evt-1",
        "record": {"type": "lead", "id": text},
        "trigger": "record_created",
        "status": "partially_failed",
        "conditions": [
            {"field": "name", "op": "eq", "expected": text, "actual": text, "passed": False}
        ],
        "actions": [
            {
                "step": 0,
                "type": "send_email",
                "action_id": "a-1",
                "params": {"subject": text},
                "status": "failed",
                "attempts": 1,
                "detail": text,
                "error": text,
            }
        ],
        "error": text,
        "depth": 0,
        "occurred_at": "2026-12-01T10:00:00Z",
        "decided_at": "2026-12-01T10:00:01Z",
        "completed_at": None,
        "note": text,
        "event": {
            "event_id": "evt-1",
            "tenant_id": "acme",
            "record_type": "lead",
            "record_id": text,
            "operation": "updated",
            "occurred_at": "2026-12-01T10:00:00Z",
            "before": record,
            "after": record,
            "actor_id": text,
        },
    }


def rendered(template: str, text: str) -> str:
    detail = run(text)
    steps = [
        {
            "step": 0,
            "type": "send_email",
            "action_id": "a-1",
            "params": {"subject": text},
            "status": "failed",
            "attempts": [
                {
                    "attempt": 1,
                    "status": "failed",
                    "detail": text,
                    "error": text,
                    "at": "2026-12-01T10:00:02Z",
                    "next_attempt_at": None,
                }
            ],
        }
    ]
    tree = {
        "kind": "not",
        "loc": "conditions.not",
        "passed": True,
        "children": [
            {
                "kind": "leaf",
                "loc": "conditions.not.0",
                "passed": False,
                "children": [],
                "result": detail["conditions"][0],
            }
        ],
    }
    return templates.get_template(template).render(
        session=None,
        csrf_field="csrf_token",
        csrf="",
        path="/runs/run-1",
        run=detail,
        steps=steps,
        failed=steps,
        condition_tree=tree,
        runs=[detail],
        filters={"status": "", "range": "", "from": "", "to": "", "record_id": text},
        problems=[text],
        statuses=["failed"],
        older=None,
        filter_query="",
        live=True,
        poll_seconds=3,
        workflow={"id": text, "name": text, "trigger": {"type": "record_created"}},
    )


PLAIN = "plain words"
TEMPLATES = ("run.html", "runs_table.html")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_record_data_never_changes_the_markup(text: str) -> None:
    """Any text but the empty one (which leaves optional parts out, as it should)."""
    for template in TEMPLATES:
        assert structure(rendered(template, text)) == structure(rendered(template, PLAIN))


def test_the_classic_payloads_render_as_text() -> None:
    for payload in ("<img src=x onerror=alert(1)>", "<script>alert(2)</script>", '"><b x="'):
        html = rendered("run.html", payload)
        assert payload not in html
        assert structure(html) == structure(rendered("run.html", PLAIN))

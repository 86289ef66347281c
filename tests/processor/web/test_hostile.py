"""Hostile requests to the web app: bodies that are not UTF-8 or not in a charset at all,
multipart bodies, too many fields, JSON nested past what can be written, and any mix of
builder field names, values and buttons. Each is bounded work and a 4xx that says why, never
a 500: the builder's pages are driven with the fake API of ``test_builder``."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

import processor.web.shell  # noqa: F401  (registers the sign-in page)
from processor.web.builder import (
    EDITS,
    PastedRecordError,
    _differs,
    _state,
    apply_edit,
    build,
    dry_run_event,
)
from processor.web.calls import ApiCaller
from processor.web.forms import (
    MAX_DEPTH,
    MAX_LIST_ITEMS,
    READ_NESTING,
    _leaf_value,
    _leaf_value_text,
    _read_list_value,
    form_to_document,
    read_value,
)
from processor.web.sessions import SESSION_COOKIE
from tests.processor.web.conftest import OpenClient
from tests.processor.web.test_builder import NOW, SEED_FORM, Fake
from topics import codec
from topics.types import MAX_NESTING

DEEP_LIST = "[" * 300 + "]" * 300
"""JSON orjson reads (up to 1024 levels) but cannot write (past 254)."""
DEEP_OBJECT = '{"a":' * 300 + "1" + "}" * 300


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
async def client(fake: Fake, open_client: OpenClient) -> TestClient[Any, Any]:
    return await open_client(fake.app(), fake.sessions, fake.token)


async def send(
    client: TestClient[Any, Any], path: str, body: bytes, content_type: str
) -> tuple[int, str]:
    response = await client.post(
        path, data=body, headers={"Content-Type": content_type}, allow_redirects=False
    )
    return response.status, await response.text()


def urlencoded(client: TestClient[Any, Any], rest: bytes) -> bytes:
    return b"csrf_token=" + client.csrf.encode() + b"&" + rest  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- bodies


async def test_a_form_that_is_not_utf_8_is_a_400_saying_so(
    client: TestClient[Any, Any],
) -> None:
    """Raw bytes that are not UTF-8 (not %-escaped) made aiohttp's decoding fail: a 500."""
    for path in ("/workflows/new", "/sign-in"):
        status, html = await send(
            client,
            path,
            urlencoded(client, b"op=refresh&name=\xff\xfe"),
            "application/x-www-form-urlencoded",
        )
        assert status == 400, path
        assert "not text in its charset" in html


async def test_a_form_in_an_unknown_charset_is_a_400(client: TestClient[Any, Any]) -> None:
    status, html = await send(
        client,
        "/workflows/new",
        urlencoded(client, b"op=refresh&name=x"),
        "application/x-www-form-urlencoded; charset=no-such-charset",
    )
    assert status == 400 and "not text in its charset" in html


async def test_a_multipart_form_is_refused_before_it_is_read(
    client: TestClient[Any, Any],
) -> None:
    """No form of the app is multipart; aiohttp would spool its file parts to disk (and a
    part in an unknown charset was a 500)."""
    csrf = client.csrf.encode()  # type: ignore[attr-defined]
    body = (
        b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n' + csrf + b"\r\n"
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n'
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nx\r\n--b--\r\n"
    )
    status, html = await send(client, "/workflows/new", body, "multipart/form-data; boundary=b")
    assert status == 415 and "x-www-form-urlencoded" in html


async def test_too_many_fields_is_a_413_naming_the_bound(client: TestClient[Any, Any]) -> None:
    fields = b"&".join(b"conditions.%d.kind=all" % i for i in range(5_000))
    status, html = await send(
        client, "/workflows/new", urlencoded(client, fields), "application/x-www-form-urlencoded"
    )
    assert status == 413
    assert "form fields" in html and "1000" in html


# ---------------------------------------------------------------------------- deep JSON


async def test_a_value_nested_past_what_can_be_written_is_kept_as_typed(
    client: TestClient[Any, Any],
) -> None:
    """A leaf's value or a webhook's headers nested 300 levels deep: orjson reads it, but
    could not write it again (the form shown back, the body sent to the API): a 500."""
    form = {
        **SEED_FORM,
        "conditions.0.value": DEEP_LIST,
        "actions.2.type": "call_webhook",
        "actions.2.params.url": "https://example.com/hook",
        "actions.2.params.headers": DEEP_OBJECT,
    }
    for op in ("refresh", "add_condition:conditions", "save"):
        data = {**form, "op": op, "csrf_token": client.csrf}  # type: ignore[attr-defined]
        response = await client.post("/workflows/new", data=data, allow_redirects=False)
        assert response.status in (200, 422), op
        html = await response.text()
        assert DEEP_LIST in html and "internal error" not in html


async def test_a_pasted_record_nested_too_deep_is_refused_at_its_field(
    client: TestClient[Any, Any], fake: Fake
) -> None:
    document = {**form_to_document(SEED_FORM), "id": "wf-1", "tenant_id": "t-1"}
    fake.api.workflows["wf-1"] = {**document, "version": 1, "status": "draft"}
    data = {
        **SEED_FORM,
        "op": "test",
        "test.record": DEEP_OBJECT,
        "csrf_token": client.csrf,  # type: ignore[attr-defined]
    }
    response = await client.post("/workflows/wf-1/edit", data=data, allow_redirects=False)
    assert response.status == 422
    assert "more than 64 levels deep" in await response.text()
    with pytest.raises(PastedRecordError):
        dry_run_event({"test.record": DEEP_OBJECT}, document, NOW)


async def test_a_body_too_deep_to_encode_is_the_apis_422_not_a_crash() -> None:
    """The last line: whatever a page sends, a body orjson cannot write is answered as the
    API answers a body past its nesting bound."""
    deep: Any = 1
    for _ in range(300):
        deep = [deep]

    async def handler(request: web.Request) -> web.Response:
        answer = await ApiCaller(request, "token").post("/anything", deep)
        return web.json_response({"status": answer.status, "error": answer.error})

    app = web.Application()
    app.router.add_post("/page", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/page")
        answer = await response.json()
        assert answer["status"] == 422 and "more than 64 levels deep" in answer["error"]


def test_json_text_is_read_only_within_the_nesting_bound() -> None:
    """Past MAX_NESTING but within READ_NESTING a value is read, so that the API says it
    nests too deep; past that it goes as typed (orjson could not write it back)."""
    for depth in (63, MAX_NESTING + 1, READ_NESTING):
        assert isinstance(read_value("[" * depth + "]" * depth), list)
    assert read_value(DEEP_LIST) == DEEP_LIST
    # the deepest value read, at the deepest condition, still takes every edit and is sent
    form: dict[str, str] = {"name": "x", "trigger.type": "record_created"}
    path = "conditions"
    for _ in range(MAX_DEPTH - 1):
        form[f"{path}.kind"] = "all"
        path += ".0"
    deepest = "[" * READ_NESTING + "]" * READ_NESTING
    form |= {f"{path}.kind": "leaf", f"{path}.field": "f", f"{path}.value": deepest}
    for op in ("refresh", f"add_condition:{path.rpartition('.')[0]}", f"remove_condition:{path}"):
        edited = apply_edit(_state(form), op)
        assert edited is not None
        codec.dumps(form_to_document(edited))


# ---------------------------------------------------------------------------- any form

_PATHS = st.lists(st.sampled_from(["0", "1", "9", "0000", "x", ""]), max_size=40).map(
    lambda parts: ".".join(["conditions", *parts])
)
_NAMES = (
    st.sampled_from(
        [
            "name",
            "version",
            "trigger.type",
            "trigger.params.record_type",
            "conditions.kind",
            "conditions.0.kind",
            "conditions.0.op",
            "conditions.0.value",
            "actions.0.type",
            "actions.0.params.body",
            "actions.0.params.headers",
            "actions.999999.type",
            "new_action",
            "test.record",
        ]
    )
    | st.builds(
        lambda path, key: f"{path}.{key}",
        _PATHS,
        st.sampled_from(["kind", "field", "op", "value"]),
    )
    | st.text(max_size=40)
)
_VALUES = (
    st.sampled_from([DEEP_LIST, DEEP_OBJECT])
    | st.sampled_from(
        [
            "all",
            "any",
            "not",
            "leaf",
            "in",
            "gte",
            "call_webhook",
            "send_email",
            "record_created",
            "1e999",
            "NaN",
            "99999999999999999999999999999",
            "{{record.name}}",
            "<img src=x onerror=alert(1)>",
        ]
    )
    | st.text(max_size=60)
)
_OPS = st.builds(
    lambda name, argument: f"{name}:{argument}",
    st.sampled_from([*EDITS, "save", "test", "use_record"]),
    _PATHS | st.text(max_size=12),
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, max_size=25), _OPS)
def test_any_form_and_button_make_a_builder_and_a_body_that_can_be_sent(
    submitted: dict[str, str], op: str
) -> None:
    """What a page does with a submitted form before it calls the API: normalise it, apply
    the button, draw the builder, and encode the document for the API (the seed's form with
    any of its fields changed, and any others added)."""
    form = _state({**SEED_FORM, **submitted})
    edited = apply_edit(form, op)
    shown = edited if edited is not None else form
    build(shown)
    codec.dumps(form_to_document(shown))


# ---------------------------------------------------------------------------- cookies


async def test_behind_a_proxy_that_ended_tls_the_cookies_are_secure() -> None:
    """TLS ended at a load balancer: the worker sees HTTP, and its cookies went without
    ``Secure`` (a browser would send the session over plain HTTP too)."""
    from tests.processor.web.test_pages import OPERATOR, set_cookies
    from tests.processor.web.test_pages import Fake as ShellFake

    shell = ShellFake()
    async with TestClient(TestServer(shell.app()), cookie_jar=CookieJar(unsafe=True)) as client:
        proxied = {"X-Forwarded-Proto": "https"}
        form = await client.get("/sign-in", headers=proxied)
        sign_in = set_cookies(form)["coeflow_sign_in"]
        assert sign_in["secure"] and sign_in["httponly"] and sign_in["samesite"] == "Strict"
        response = await client.post(
            "/sign-in",
            data={"token": OPERATOR, "csrf_token": sign_in.value},
            # the jar keeps a Secure cookie for HTTPS, which the test client does not speak
            headers={**proxied, "Cookie": f"coeflow_sign_in={sign_in.value}"},
            allow_redirects=False,
        )
        assert response.status == 303
        session = set_cookies(response)[SESSION_COOKIE]
        assert session["secure"] and session["httponly"] and session["samesite"] == "Strict"
        plain = set_cookies(await client.get("/sign-in"))["coeflow_sign_in"]
        assert not plain["secure"]  # plain HTTP (make run): a Secure cookie would be dropped


# ---------------------------------------------------------------------------- long lists


def _list_leaves(value: str, leaves: int = 199) -> dict[str, str]:
    form = {"name": "x", "trigger.type": "record_created", "conditions.kind": "all"}
    for i in range(leaves):
        form |= {
            f"conditions.{i}.kind": "leaf",
            f"conditions.{i}.op": "in",
            f"conditions.{i}.value": value,
        }
    return form


def test_a_comma_list_past_its_bound_goes_as_typed() -> None:
    """``1x,1x,…`` in a 1 MiB form was half a million items, each parsed (and failing) a
    few times over: 7 seconds of the worker's event loop, every tenant's events waiting."""
    longest = ",".join(["1x"] * MAX_LIST_ITEMS)
    assert _read_list_value(longest) == ["1x"] * MAX_LIST_ITEMS
    past = ",".join(["1x"] * (MAX_LIST_ITEMS + 1))
    assert _read_list_value(past) == past
    assert _read_list_value(orjson.dumps(["a"] * 5_000).decode()) == ["a"] * 5_000  # JSON
    form = _list_leaves(",".join(["1x"] * 1_600))
    started = time.monotonic()
    shown = _state(form)
    build(shown)
    _differs(shown, form_to_document(shown))
    assert time.monotonic() - started < 3.0  # was 7 s; now some milliseconds


def test_items_of_a_comma_list_are_read_without_a_parse_that_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failed = []
    loads = orjson.loads

    def counting(text: Any) -> Any:
        try:
            return loads(text)
        except orjson.JSONDecodeError:
            failed.append(text)
            raise

    monkeypatch.setattr(orjson, "loads", counting)
    text = ", ".join(["1x", "[x", "{", '"\\q"', "tru", "-", "ZZ"] * 20)
    assert len(_read_list_value(text)) == 140
    assert failed == [text]  # the whole text, once (it may be a JSON list)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(max_size=12)
        | st.integers(-(2**63), 2**63 - 1)
        | st.booleans()
        | st.none()
        | st.floats(allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=MAX_LIST_ITEMS + 5,
    )
)
def test_a_list_value_shown_reads_back_as_itself(value: list[Any]) -> None:
    assert _leaf_value("in", _leaf_value_text("in", value)) == value


# ---------------------------------------------------------------------------- headers


async def test_every_answer_is_nosniff_the_static_files_too() -> None:
    """The pages said nosniff; the static files (htmx) and the API's JSON did not."""
    from processor.web.pages import STATIC
    from processor.web.server import harden

    async def api(_request: web.Request) -> web.Response:
        return web.json_response({"error": "x"})

    app = web.Application()
    app.router.add_get("/api/v1/x", api)
    app.router.add_static("/static/", STATIC)
    harden(app)
    async with TestClient(TestServer(app)) as client:
        for path in ("/static/app.js", "/static/htmx-LICENSE.txt", "/api/v1/x", "/nowhere"):
            response = await client.get(path)
            assert response.headers.get("X-Content-Type-Options") == "nosniff", path


async def test_a_move_of_a_position_that_is_no_number_is_no_500(
    client: TestClient[Any, Any],
) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` raises: a position is ASCII digits, few."""
    for op in ("move_up:²", "move_down:٣", "move_up:" + "9" * 5_000):
        data = {**SEED_FORM, "op": op, "csrf_token": client.csrf}  # type: ignore[attr-defined]
        response = await client.post("/workflows/new", data=data, allow_redirects=False)
        assert response.status == 200, op
        assert "internal error" not in await response.text()

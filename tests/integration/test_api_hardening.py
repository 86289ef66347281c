"""What a tester found against a running worker, fixed: read and write tokens never see an
inbound webhook's secret; requests that were 500s (or plain text) are JSON 4xx; the worker's
log carries no tokens and no forged lines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from coeflow.signing import signature_header
from coeflow.tools.processes import TOKEN, WorkerProcess
from tests.integration.harness import Api, seed_workflow, tenant, until
from tests.integration.test_inbound_webhooks import post
from topics import codec

pytestmark = pytest.mark.integration

W = "/api/v1/workflows"


def hook_workflow(tenant_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "id": f"wf-hook-{tenant_id}",
        "tenant_id": tenant_id,
        "name": "Orders",
        "status": "active",
        "trigger": {"type": "webhook_received"},
        "actions": [{"type": "add_note", "body": "order {{record.order_id}}"}],
        **overrides,
    }


async def raw(
    worker: WorkerProcess,
    method: str,
    path: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One request as bytes, for what an HTTP client would not send: the status, the
    headers (lower-cased names) and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
    lines = [
        method.encode() + b" " + path + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
        b"Content-Length: " + str(len(body)).encode(),
        *(name + b": " + value for name, value in headers),
    ]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), fields, content


def assert_json_error(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    got, fields, content = answer
    assert got == status, (got, content)
    assert fields["content-type"].startswith("application/json"), (fields, content)
    if not content:  # HEAD
        return {}
    body: dict[str, Any] = codec.loads(content)
    assert isinstance(body.get("error"), str), body
    return body


async def test_read_and_write_tokens_never_see_an_inbound_webhooks_secret(
    api: Api, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    created = await api.create(hook_workflow(acme))
    workflow_id, secret = created["id"], created["inbound_secret"]
    assert secret.startswith("whsec_")
    assert created["inbound_secrets"] == [
        {"hint": f"whsec_…{secret[-4:]}", "created_at": created["updated_at"], "expires_at": None}
    ]
    reader, writer = await api.as_tenant(acme, "read"), await api.as_tenant(acme, "write")
    one = f"{W}/{workflow_id}"

    async def reads(client: Api) -> str:
        """Everything a read shows of the workflow, as one text."""
        shown = []
        for path in (one, W, f"{W}?tenant_id={acme}", f"{one}/versions"):
            status, body = await client.call("GET", path)
            assert status == 200, (path, body)
            shown.append(codec.dumps(body).decode())
        return "\n".join(shown)

    for client in (reader, writer, api):
        shown = await reads(client)
        assert secret not in shown and secret[6:-4] not in shown
        assert f"whsec_…{secret[-4:]}" in shown

    # A write shows the secret it made, and only that one, once.
    status, rotated = await writer.call("POST", f"{one}/webhook-secret", {"grace_seconds": 3600})
    assert status == 200 and len(rotated["inbound_secrets"]) == 2
    new_secret = rotated["inbound_secret"]
    assert new_secret not in (None, secret) and secret not in codec.dumps(rotated).decode()
    status, edited = await writer.call("PUT", one, hook_workflow(acme, name="Orders, renamed"))
    assert status == 200 and "inbound_secret" not in edited
    for action in ("deactivate", "activate"):
        status, changed = await writer.call("POST", f"{one}/{action}")
        assert status == 200 and "inbound_secret" not in changed
    for client in (reader, writer):
        shown = await reads(client)
        assert secret not in shown and new_secret not in shown

    # A PUT that gives a workflow the trigger makes its first secret: that answer shows it.
    plain = await writer.create(
        {k: v for k, v in seed_workflow(acme, status="draft").items() if k != "tenant_id"}
    )
    assert "inbound_secret" not in plain and plain["inbound_secrets"] == []
    status, switched = await writer.call(
        "PUT", f"{W}/{plain['id']}", hook_workflow(acme, id=plain["id"], status="draft")
    )
    assert status == 200 and switched["inbound_secret"].startswith("whsec_")
    assert switched["inbound_secret"] not in await reads(reader)
    # What a write answered can be PUT back as it is.
    status, again = await writer.call("PUT", f"{W}/{plain['id']}", switched)
    assert status == 200 and "inbound_secret" not in again

    # The secrets still sign: the workers keep them.
    body = b'{"order_id": "o-1"}'
    for n, key in enumerate((new_secret, secret)):
        order = b'{"order_id": "o-%d"}' % n  # one body signed twice in a second is one delivery
        status, answer = await post(
            shared_worker, workflow_id, order, secret=key, delivery=f"d-{n}"
        )
        assert (status, answer["accepted"]) == (202, True)
    status, answer = await post(
        shared_worker, workflow_id, body, secret="whsec_" + "x" * 40, delivery="d-9"
    )
    assert status == 401


async def test_what_was_a_500_or_plain_text_is_a_json_4xx(
    api: Api, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    created = await api.create(hook_workflow(acme))
    hook = f"/hooks/{created['id']}".encode()
    log_from = shared_worker.log_path.stat().st_size

    def signed(value: str | bytes) -> list[tuple[bytes, bytes]]:
        value = value.encode() if isinstance(value, str) else value
        return [(b"Coeflow-Signature", value), (b"Coeflow-Delivery-Id", b"d-1")]

    now = int(time.time())
    for signature in (
        "t=253402300800,v1=00",  # year 10000
        "t=" + "9" * 5000 + ",v1=00",
        "t=²,v1=00",
        f"t={now},v1=é",
    ):
        answer = await raw(shared_worker, "POST", hook, signed(signature), b"{}")
        assert "Coeflow-Signature" in assert_json_error(answer, 401)["error"] or (
            "signed at" in codec.loads(answer[2])["error"]
        )

    deep = b'{"a":' + b"[" * 299 + b"]" * 299 + b"}"  # 300 levels: orjson writes 254 at most
    answer = await raw(
        shared_worker,
        "POST",
        hook,
        signed(signature_header(created["inbound_secret"], now, deep)),
        deep,
    )
    assert "more than 64 levels" in assert_json_error(answer, 422)["error"]
    answer = await raw(
        shared_worker, "POST", hook, signed("t=1,v1=00"), b"{" + b" " * (2 << 20) + b"}"
    )
    assert_json_error(answer, 413)

    bearer = (b"Authorization", b"Bearer " + TOKEN.encode())
    one = f"{W}/{created['id']}".encode()
    answer = await raw(shared_worker, "PATCH", one, [bearer], b"{}")
    assert "PATCH is not allowed" in assert_json_error(answer, 405)["error"]
    assert set(answer[1]["allow"].replace(" ", "").split(",")) == {"DELETE", "GET", "HEAD", "PUT"}
    answer = await raw(shared_worker, "HEAD", one + b"/activate", [bearer])
    assert_json_error(answer, 405)
    assert answer[1]["allow"].replace(" ", "") == "POST"
    assert_json_error(await raw(shared_worker, "GET", b"/api/v1/nowhere", [bearer]), 404)
    assert_json_error(await raw(shared_worker, "POST", b"/nowhere", []), 404)
    for method in ("GET", "HEAD", "PUT"):
        answer = await raw(shared_worker, method, hook, [])
        assert_json_error(answer, 405)
        assert answer[1]["allow"] == "POST"
    assert_json_error(await raw(shared_worker, "HEAD", W.encode(), []), 401)  # was a 500
    status, fields, _ = await raw(shared_worker, "HEAD", one, [bearer])
    assert (status, fields["content-type"]) == (200, "application/json")
    for token in (b"Bearer \xff\xfe", "Bearer tökén€".encode(), b"Bearer cwt_\xff_\xfe"):
        answer = await raw(shared_worker, "GET", W.encode(), [(b"Authorization", token)])
        assert assert_json_error(answer, 401)["error"] == "invalid bearer token"
    runs = one + b"/runs?limit=%C2%B2"
    assert assert_json_error(await raw(shared_worker, "GET", runs, [bearer]), 422)["problems"]
    conditions = b'{"not":' * 70 + b'{"field":"a","op":"eq","value":1}' + b"}" * 70
    too_deep = codec.dumps(hook_workflow(acme, id="wf-deep"))[:-1] + b',"conditions":'
    too_deep += conditions + b"}"
    answer = await raw(shared_worker, "POST", W.encode(), [bearer], too_deep)
    assert "more than 64 levels" in assert_json_error(answer, 422)["error"]

    logged = shared_worker.log_path.read_bytes()[log_from:].decode(errors="replace")
    assert "Traceback" not in logged, logged[-3000:]


async def test_the_log_carries_no_tokens_and_no_forged_lines(
    api: Api, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme)
    assert admin.token is not None
    log_from = shared_worker.log_path.stat().st_size
    tenant_secret = admin.token.rsplit("_", 1)[1]
    sent = [
        b"Bearer abc\x01def",
        b"Bearer " + admin.token.encode() + b"\x01",
        b"Bearer " + TOKEN.encode() + b"\x7f\x01",
        "Bearer абв€".encode(),  # not latin-1
        b"Bearer \xff\xfe" + TOKEN.encode(),
    ]
    for value in sent:
        answer = await raw(shared_worker, "GET", W.encode(), [(b"Authorization", value)])
        assert 400 <= answer[0] < 500
    await raw(shared_worker, "POST", b"/hooks/x%0d%0aFORGED", [], b"{}")
    await raw(shared_worker, "GET", b"/api/v1/workflows/y%0d%0aFORGED%0a", [])
    await raw(shared_worker, "POST", b"/hooks/z%1b[31mFORGED%e2%80%a8", [], b"{}")

    def logged() -> str:
        return shared_worker.log_path.read_bytes()[log_from:].decode(errors="replace")

    await until(lambda: "z\\x1b[31mFORGED" in logged())
    text = logged()
    assert "x\\r\\nFORGED" in text  # the refusal is logged, escaped
    lines = text.splitlines()
    assert not any("FORGED" in line and not line.startswith("[") for line in lines), text
    assert "\x1b" not in text and "\u2028" not in text and "\r" not in text
    for secret in ("abc\x01def", "abc\\x01def", tenant_secret, TOKEN, "абв"):
        assert secret not in text, secret
    assert "Traceback" not in text, text


async def test_a_gzip_bomb_is_refused_before_it_inflates(shared_worker: WorkerProcess) -> None:
    """256 KB of gzip that would be 256 MiB of zeros, with no token: answered at once."""
    import time
    import zlib

    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(squeeze.compress(bytes(1 << 20)) for _ in range(256)) + squeeze.flush()
    rss = shared_worker.rss_bytes()
    async with aiohttp.ClientSession() as http:
        for path in ("/nope", "/api/v1/tokens", "/hooks/wf-none"):
            started = time.monotonic()
            async with http.post(
                shared_worker.url + path, data=bomb, headers={"Content-Encoding": "gzip"}
            ) as response:
                took = time.monotonic() - started
                assert response.status == 415, (path, response.status)
                assert "compressed" in (await response.json())["error"]
            assert took < 0.5, f"{path}: {took:.2f}s"
    assert shared_worker.rss_bytes() - rss < 32 << 20

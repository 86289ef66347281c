"""Each executor against a real peer on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from coeflow.errors import OutboundBlocked, PermanentEffectError, TransientEffectError
from coeflow.settings import Settings
from coeflow.signing import verify
from executors.email import EmailExecutor
from executors.interface import ExecutorContext
from executors.slack import SlackExecutor
from executors.sms import SmsExecutor
from executors.webhook import WebhookExecutor
from tests.factories import make_command
from tests.peers import HttpPeer, SmtpPeer

SECRET = "whsec-test"
CLOCK_NOW = datetime(2026, 11, 25, 19, 0, 5, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    with SmtpPeer() as peer:
        yield peer


@pytest.fixture
def http() -> Iterator[HttpPeer]:
    with HttpPeer(hang_seconds=3) as peer:
        yield peer


def peer_settings(smtp_port: int, http: HttpPeer, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "kafka_bootstrap": "127.0.0.1:1",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_tls": "none",
        "smtp_from": "workflows@coeffection.example",
        "sms_api_url": http.url("/sms/ok"),
        "sms_account": "AC123",
        "sms_auth_token": "sms-token",
        "sms_from": "+15550001111",
        "outbound_allowlist": ("127.0.0.1",),
        "webhook_signing_secret": SECRET,
        "action_timeout": 1.0,
        **overrides,
    }
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


@pytest.fixture
async def context(smtp: SmtpPeer, http: HttpPeer) -> AsyncIterator[ExecutorContext]:
    context = ExecutorContext.create(peer_settings(smtp.port, http), lambda: CLOCK_NOW)
    yield context
    await context.aclose()


async def test_email_arrives_with_a_message_id_from_the_action_id(
    context: ExecutorContext, smtp: SmtpPeer
) -> None:
    command = make_command(
        "send_email",
        {
            "to": "ada@example.com",
            "cc": ["boss@example.com"],
            "subject": "Welcome — Thanks for your interest",
            "body": "Hi Ada, ...",
        },
    )
    detail = await EmailExecutor(context).perform(command)
    [message] = smtp.messages
    assert message["Subject"] == "Welcome — Thanks for your interest"
    assert message["Message-ID"] == f"<{command.action_id}@coeffection.example>"
    assert message["X-Envelope-To"] == "ada@example.com, boss@example.com"
    assert message.get_content().strip() == "Hi Ada, ..."
    assert detail == f"accepted by 127.0.0.1 as <{command.action_id}@coeffection.example>"


async def test_a_refused_recipient_is_permanent_and_an_unreachable_server_transient(
    context: ExecutorContext, smtp: SmtpPeer, http: HttpPeer
) -> None:
    bounce = make_command("send_email", {"to": "bounce@example.com", "subject": "s", "body": "b"})
    with pytest.raises(PermanentEffectError, match="refused the recipients \\[550\\]"):
        await EmailExecutor(context).perform(bounce)
    down = ExecutorContext.create(peer_settings(1, http), lambda: CLOCK_NOW)
    ok = make_command("send_email", {"to": "ada@example.com", "subject": "s", "body": "b"})
    with pytest.raises(TransientEffectError, match="cannot reach the SMTP server"):
        await EmailExecutor(down).perform(ok)
    await down.aclose()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"to": "ada@-example.com"}, "to"),
        ({"to": "ada@example.com", "cc": ["b@example.com", "a..b@example.com"]}, "cc"),
        ({"to": "ada@example.com", "reply_to": "ada@exa_mple.com"}, "reply_to"),
    ],
)
async def test_an_address_the_processor_let_by_for_its_shape_is_checked_in_full(
    context: ExecutorContext, smtp: SmtpPeer, params: dict[str, Any], name: str
) -> None:
    command = make_command("send_email", {"subject": "s", "body": "b", **params})
    with pytest.raises(PermanentEffectError, match=f"^{name} is not a valid email address") as e:
        await EmailExecutor(context).perform(command)
    assert "example.com" not in str(e.value)  # the reason names the parameter, not the address
    assert smtp.messages == []


async def test_email_without_an_smtp_server_fails_saying_which_setting(http: HttpPeer) -> None:
    context = ExecutorContext.create(peer_settings(25, http, smtp_host=None), lambda: CLOCK_NOW)
    command = make_command("send_email", {"to": "ada@example.com", "subject": "s", "body": "b"})
    with pytest.raises(PermanentEffectError, match="COEFLOW_SMTP_HOST"):
        await EmailExecutor(context).perform(command)
    await context.aclose()


async def test_sms_is_a_form_post_with_basic_auth_and_the_idempotency_key(
    context: ExecutorContext, http: HttpPeer
) -> None:
    command = make_command("send_sms", {"to": "+4915112345678", "body": "Your demo is at 3pm"})
    assert await SmsExecutor(context).perform(command) == "HTTP 200"
    [request] = http.to("/sms/")
    assert parse_qs(request.body.decode()) == {
        "To": ["+4915112345678"],
        "From": ["+15550001111"],
        "Body": ["Your demo is at 3pm"],
    }
    assert (
        request.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:sms-token").decode()
    )
    assert request.headers["idempotency-key"] == command.action_id


async def test_slack_posts_the_text_as_json(context: ExecutorContext, http: HttpPeer) -> None:
    command = make_command(
        "send_slack_message", {"webhook_url": http.url("/ok/slack"), "text": "🎉 Deal won"}
    )
    assert await SlackExecutor(context).perform(command) == "HTTP 200"
    [request] = http.to("/ok/slack")
    assert orjson.loads(request.body) == {"text": "🎉 Deal won"}
    assert request.headers["content-type"] == "application/json"


async def test_a_webhook_delivery_is_signed_and_carries_the_action_id(
    context: ExecutorContext, http: HttpPeer
) -> None:
    command = make_command(
        "call_webhook",
        {
            "url": http.url("/ok/hook"),
            "method": "PUT",
            "headers": {"X-Tenant": "acme"},
            "body": {"lead": "L-1", "score": 72},
        },
    )
    assert await WebhookExecutor(context).perform(command) == "HTTP 200"
    [request] = http.to("/ok/hook")
    assert request.method == "PUT" and request.headers["x-tenant"] == "acme"
    assert orjson.loads(request.body) == {"lead": "L-1", "score": 72}
    assert request.headers["idempotency-key"] == command.action_id
    assert request.headers["coeflow-action-id"] == command.action_id
    signature = request.headers["coeflow-signature"]
    assert signature.startswith(f"t={int(CLOCK_NOW.timestamp())},v1=")
    assert verify(SECRET, signature, request.body)


async def test_webhook_failures_are_classified_by_status(
    context: ExecutorContext, http: HttpPeer
) -> None:
    executor = WebhookExecutor(context)

    def hook(path: str) -> Any:
        return make_command("call_webhook", {"url": http.url(path), "body": {}})

    with pytest.raises(PermanentEffectError, match="HTTP 400"):
        await executor.perform(hook("/status/400/a"))
    with pytest.raises(TransientEffectError, match="HTTP 503"):
        await executor.perform(hook("/status/503/a"))
    with pytest.raises(TransientEffectError, match="HTTP 429") as throttled:
        await executor.perform(hook("/status/429/a?retry_after=12"))
    assert throttled.value.retry_after == 12.0
    with pytest.raises(TransientEffectError, match="no answer within 1s"):
        await executor.perform(hook("/hang/a"))
    with pytest.raises(TransientEffectError, match="cannot reach the peer"):
        await executor.perform(make_command("call_webhook", {"url": "http://127.0.0.1:1/"}))


async def test_webhooks_and_slack_refuse_blocked_addresses(context: ExecutorContext) -> None:
    hook = make_command("call_webhook", {"url": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(OutboundBlocked, match="link-local"):
        await WebhookExecutor(context).perform(hook)
    slack = make_command("send_slack_message", {"webhook_url": "http://10.0.0.7/", "text": "x"})
    with pytest.raises(OutboundBlocked, match="private"):
        await SlackExecutor(context).perform(slack)


async def test_webhooks_are_never_sent_unsigned(http: HttpPeer) -> None:
    unsigned = peer_settings(25, http, webhook_signing_secret=None)
    context = ExecutorContext.create(unsigned, lambda: CLOCK_NOW)
    command = make_command("call_webhook", {"url": http.url("/ok/unsigned")})
    with pytest.raises(PermanentEffectError, match="COEFLOW_WEBHOOK_SIGNING_SECRET"):
        await WebhookExecutor(context).perform(command)
    await context.aclose()
    assert http.received == []

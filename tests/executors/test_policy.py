from __future__ import annotations

import random
from datetime import timedelta

import pytest

from coeflow.errors import PermanentEffectError, TransientEffectError
from executors.policy import RetryPolicy, attempt_outcome, check_http_status, retry_after_seconds
from tests.factories import NOW, command_source, make_command

POLICY = RetryPolicy(max_attempts=5, backoff=1.0, backoff_max=10.0)


def test_backoff_doubles_with_jitter_between_half_and_all_of_the_step() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        delays = [POLICY.delay(attempt, rng=rng) for _ in range(200)]
        assert all(d is not None and step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 100  # jittered, not one fixed value


def test_backoff_is_capped_and_the_budget_ends() -> None:
    capped = RetryPolicy(max_attempts=20, backoff=1.0, backoff_max=10.0)
    assert 5.0 <= (capped.delay(10) or 0) <= 10.0
    assert POLICY.delay(5) is None and POLICY.delay(6) is None


def test_retry_after_is_honoured_when_longer_and_capped() -> None:
    assert POLICY.delay(1, retry_after=7.0) == 7.0
    assert POLICY.delay(1, retry_after=3600.0) == 10.0
    assert (POLICY.delay(4, retry_after=0.1) or 0) >= 4.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Wed, 25 Nov 2026 19:01:01 GMT", 60.0),
        ("Wed, 25 Nov 2026 18:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(header, NOW) == seconds


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 425, 429])
def test_server_errors_timeouts_and_throttling_are_transient(status: int) -> None:
    with pytest.raises(TransientEffectError, match=str(status)):
        check_http_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301, 302])
def test_other_client_errors_and_redirects_are_permanent(status: int) -> None:
    with pytest.raises(PermanentEffectError, match=str(status)):
        check_http_status(status)


def test_2xx_is_success() -> None:
    check_http_status(204)


def test_an_attempt_that_succeeds_is_final() -> None:
    command = make_command("call_webhook", {"url": "https://example.com/"})
    outcome = attempt_outcome(
        command,
        source=command_source("call_webhook"),
        attempt=2,
        result="HTTP 200",
        policy=POLICY,
        now=NOW,
    )
    assert (outcome.status, outcome.detail, outcome.attempt) == ("succeeded", "HTTP 200", 2)
    assert outcome.final and outcome.command is None and outcome.action_id == command.action_id


def test_a_transient_failure_schedules_the_next_attempt_and_carries_the_command() -> None:
    command = make_command("call_webhook", {"url": "https://example.com/"})
    outcome = attempt_outcome(
        command,
        source=command_source("call_webhook"),
        attempt=1,
        result=TransientEffectError("the peer answered HTTP 503", retry_after=8.0),
        policy=POLICY,
        now=NOW,
    )
    assert outcome.status == "retrying" and not outcome.final
    assert outcome.next_attempt_at == NOW + timedelta(seconds=8)
    assert outcome.command == command and outcome.error == "the peer answered HTTP 503"


def test_a_transient_failure_on_the_last_attempt_fails_and_says_so() -> None:
    outcome = attempt_outcome(
        make_command("send_sms", {"to": "+4915112345678", "body": "hi"}),
        source=command_source("send_sms"),
        attempt=5,
        result=TransientEffectError("no answer within 10s"),
        policy=POLICY,
        now=NOW,
    )
    assert outcome.status == "failed"
    assert outcome.error == "no answer within 10s (gave up after 5 attempts)"


def test_a_permanent_failure_is_not_retried() -> None:
    outcome = attempt_outcome(
        make_command("call_webhook", {"url": "https://example.com/"}),
        source=command_source("call_webhook"),
        attempt=1,
        result=PermanentEffectError("the peer answered HTTP 400"),
        policy=POLICY,
        now=NOW,
    )
    assert (outcome.status, outcome.error) == ("failed", "the peer answered HTTP 400")

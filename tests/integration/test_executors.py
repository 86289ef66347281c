"""Executors end to end: commands from the processor, effects at real peers on 127.0.0.1,
outcomes and completed runs back through the broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from coeflow.signing import verify
from coeflow.tools.processes import WorkerProcess
from tests.factories import make_command
from tests.integration.harness import (
    SIGNING_SECRET,
    Api,
    Peers,
    Record,
    lead_created,
    publish,
    read_until,
    seed_workflow,
    tenant,
    until,
)
from tests.peers import Received
from topics.catalog import (
    ACTION_OUTCOMES,
    DEAD_LETTER,
    FENCE_KEY,
    RECORD_CHANGES,
    RUNS,
    action_topic,
)

pytestmark = pytest.mark.integration


def workflow(acme: str, name: str, actions: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": f"wf-{name}-{acme}",
        "tenant_id": acme,
        "name": name,
        "status": "active",
        "trigger": {"type": "record_created", "record_type": "lead"},
        "actions": actions,
        **fields,
    }


def of(acme: str) -> Callable[[Record], bool]:
    return lambda r: isinstance(r.value, dict) and r.value.get("tenant_id") == acme


def completed(records: list[Record]) -> list[dict[str, Any]]:
    """Runs as the run tracker completed them."""
    return [r.value for r in records if r.topic == RUNS and r.value.get("completed_at")]


async def test_the_seed_welcome_email_arrives_and_the_run_completes(
    api: Api, bootstrap: str, peers: Peers
) -> None:
    acme = tenant()
    await api.create(seed_workflow(acme))
    lead = lead_created(acme, 1)
    lead["after"] = {**lead["after"], "email": f"{acme}@example.com", "name": "Ada"}
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead)])

    [message] = await until(lambda: peers.smtp.to(f"{acme}@example.com"))
    assert message["Subject"] == "Welcome — Thanks for your interest"
    assert message.get_content().replace("\r\n", "\n") == (
        "Hi Ada,\n\nthanks for your interest in Coeffection. "
        "Your account manager will be in touch soon.\n"
    )

    records = await read_until(
        bootstrap, [RUNS, RECORD_CHANGES], lambda rs: bool(completed(rs)), keep=of(acme)
    )
    [run] = completed(records)
    assert run["status"] == "succeeded" and run["event_id"] == lead["event_id"]
    email, task = run["actions"]
    assert (email["type"], email["status"], email["attempts"]) == ("send_email", "succeeded", 1)
    assert message["Message-ID"] == f"<{email['action_id']}@coeffection.example>"
    assert (task["type"], task["status"]) == ("create_task", "succeeded")
    # The CRM simulator created the task, as a change caused by this run.
    [created] = [
        r.value for r in records if r.topic == RECORD_CHANGES and r.value["record_type"] == "task"
    ]
    assert created["causation"] == {
        "run_id": run["run_id"],
        "workflow_id": run["workflow_id"],
        "depth": 1,
    }
    assert created["after"]["title"] == "Follow-up call"


async def test_slack_sms_and_a_signed_webhook_reach_their_peers(
    api: Api, bootstrap: str, peers: Peers
) -> None:
    acme = tenant()
    await api.create(
        workflow(
            acme,
            "notify",
            [
                {
                    "type": "send_slack_message",
                    "webhook_url": peers.http.url(f"/ok/slack-{acme}"),
                    "text": "New lead {{record.name}}",
                },
                {
                    "type": "send_sms",
                    "to": "+49 151 1234 5678",
                    "body": f"{acme}: call {{{{record.name}}}}",
                },
                {
                    "type": "call_webhook",
                    "url": peers.http.url(f"/ok/hook-{acme}"),
                    "body": {"lead": "{{record.name}}", "score": "{{record.score}}"},
                },
            ],
        )
    )
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1))])
    records = await read_until(bootstrap, [RUNS], lambda rs: bool(completed(rs)), keep=of(acme))
    [run] = completed(records)
    assert run["status"] == "succeeded", run
    slack_step, sms_step, hook_step = run["actions"]

    [slack] = peers.http.to(f"/ok/slack-{acme}")
    assert slack.body == b'{"text":"New lead Lead 1"}'
    [sms] = [r for r in peers.http.to("/ok/sms") if acme.encode() in r.body]
    assert (
        b"To=%2B4915112345678" in sms.body
        and sms.headers["idempotency-key"] == sms_step["action_id"]
    )
    [hook] = peers.http.to(f"/ok/hook-{acme}")
    assert hook.body == b'{"lead":"Lead 1","score":"72"}'
    assert hook.headers["idempotency-key"] == hook_step["action_id"]
    assert verify(SIGNING_SECRET, hook.headers["coeflow-signature"], hook.body)
    assert slack.headers["idempotency-key"] == slack_step["action_id"]


async def test_a_peer_that_fails_twice_then_succeeds_gets_one_success_recorded(
    api: Api, bootstrap: str, peers: Peers
) -> None:
    acme = tenant()
    url = peers.http.url(f"/flaky/2/{acme}")
    await api.create(workflow(acme, "flaky", [{"type": "call_webhook", "url": url}]))
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1))])

    records = await read_until(
        bootstrap, [RUNS, ACTION_OUTCOMES], lambda rs: bool(completed(rs)), keep=of(acme)
    )
    outcomes = [r.value for r in records if r.topic == ACTION_OUTCOMES]
    assert [(o["attempt"], o["status"]) for o in outcomes] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "succeeded"),
    ]
    assert outcomes[0]["error"] == "the peer answered HTTP 500"
    assert [r.status for r in peers.http.to(f"/flaky/2/{acme}")] == [500, 500, 200]
    [run] = completed(records)
    assert run["status"] == "succeeded" and run["actions"][0]["attempts"] == 3


async def test_a_400_is_not_retried_and_the_command_is_dead_lettered(
    api: Api, bootstrap: str, peers: Peers
) -> None:
    acme = tenant()
    url = peers.http.url(f"/status/400/{acme}")
    await api.create(workflow(acme, "bad-request", [{"type": "call_webhook", "url": url}]))
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1))])

    records = await read_until(bootstrap, [RUNS], lambda rs: bool(completed(rs)), keep=of(acme))
    [run] = completed(records)
    assert run["status"] == "failed"
    step = run["actions"][0]
    assert (step["attempts"], step["error"]) == (1, "the peer answered HTTP 400")
    [letter] = await read_until(
        bootstrap,
        [DEAD_LETTER],
        lambda rs: len(rs) >= 1,
        keep=lambda r: r.key == step["action_id"].encode(),
    )
    assert letter.value["error"] == "action failed: the peer answered HTTP 400"
    assert letter.value["source"]["topic"] == action_topic("call_webhook")
    await asyncio.sleep(1)  # time for a retry that must not happen
    assert len(peers.http.to(f"/status/400/{acme}")) == 1


async def committed_offset(bootstrap: str, group: str, topic: str, partition: int) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, partition)) or -1
    finally:
        await consumer.stop()


async def test_a_hanging_peer_times_out_while_other_commands_and_commits_flow(
    api: Api, bootstrap: str, peers: Peers, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    hang = peers.http.url(f"/hang/{acme}")
    await api.create(
        workflow(
            acme,
            "hang",
            [{"type": "call_webhook", "url": hang}],
            trigger={"type": "record_created", "record_type": "deal"},
        )
    )
    ok = peers.http.url(f"/ok/{acme}/{{{{record.name}}}}")
    await api.create(workflow(acme, "ok", [{"type": "call_webhook", "url": ok}]))
    deal = {**lead_created(acme, 0), "record_type": "deal", "record_id": "D-1"}
    await publish(bootstrap, RECORD_CHANGES, [(b"D-1", deal)])
    [hang_command] = await read_until(
        bootstrap,
        [action_topic("call_webhook")],
        lambda rs: len(rs) >= 1,
        keep=lambda r: of(acme)(r) and r.value["workflow_id"] == f"wf-hang-{acme}",
    )
    started = time.time()
    await publish(
        bootstrap,
        RECORD_CHANGES,
        [(f"L-{n}".encode(), lead_created(acme, n)) for n in range(1, 11)],
    )

    delivered: list[Received] = await until(
        lambda: len(peers.http.to(f"/ok/{acme}/")) >= 10 and peers.http.to(f"/ok/{acme}/")
    )
    outcomes = await read_until(
        bootstrap,
        [ACTION_OUTCOMES],
        lambda rs: any(r.value["status"] == "retrying" for r in rs),
        keep=lambda r: of(acme)(r) and r.value["action_id"] == hang_command.value["action_id"],
    )
    first_timeout = outcomes[0].value
    assert first_timeout["error"] == "no answer within 2s"
    # The ten other commands were delivered while the hanging call was still waiting.
    assert max(r.arrived_at for r in delivered) < first_timeout_time(first_timeout)
    assert all(r.arrived_at > started for r in delivered)

    # The hanging command's offset is committed once its first attempt is recorded, long
    # before its retries end: retries wait in the outcome log, not in the partition.
    hang_offset = hang_command.offset

    async def committed_past() -> bool:
        return (
            await committed_offset(
                bootstrap, "coeflow-it-shared", hang_command.topic, hang_command.partition
            )
            > hang_offset
        )

    deadline = time.monotonic() + 10
    while not await committed_past():
        assert time.monotonic() < deadline, "the commit never passed the hanging command"
        await asyncio.sleep(0.2)
    final = await read_until(
        bootstrap,
        [ACTION_OUTCOMES],
        lambda rs: any(r.value["status"] == "failed" for r in rs),
        keep=lambda r: of(acme)(r) and r.value["action_id"] == hang_command.value["action_id"],
        within=30,
    )
    assert [r.value["status"] for r in final] == ["retrying", "retrying", "retrying", "failed"]


def first_timeout_time(outcome: dict[str, Any]) -> float:
    return datetime.fromisoformat(outcome["at"]).timestamp()


async def test_a_repeated_command_is_delivered_once(
    bootstrap: str, peers: Peers, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    command = make_command(
        "call_webhook",
        {"url": peers.http.url(f"/ok/repeat-{acme}"), "method": "POST"},
        tenant_id=acme,
        action_id=f"act-{acme}",
        run_id=f"run-{acme}",
    )
    topic = action_topic("call_webhook")
    key = command.action_id.encode()
    await publish(bootstrap, topic, [(key, command), (key, command), (key, command)])
    await until(lambda: peers.http.to(f"/ok/repeat-{acme}"))
    await read_until(bootstrap, [ACTION_OUTCOMES], lambda rs: len(rs) >= 1, keep=of(acme))
    await publish(bootstrap, topic, [(key, command)])  # again, after it was recorded
    await asyncio.sleep(2)
    assert len(peers.http.to(f"/ok/repeat-{acme}")) == 1
    outcomes = await read_until(
        bootstrap, [ACTION_OUTCOMES], lambda rs: len(rs) >= 1, keep=of(acme)
    )
    assert [o.value["status"] for o in outcomes] == ["succeeded"]


async def test_blocked_addresses_are_refused_and_nothing_reaches_the_canary(
    api: Api, bootstrap: str, peers: Peers
) -> None:
    acme = tenant()
    port = peers.canary.port
    urls = [
        f"http://127.0.0.2:{port}/",
        f"http://0x7f000002:{port}/",
        f"http://2130706434:{port}/",
        f"http://[::ffff:127.0.0.2]:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        peers.http.url(f"/redirect?to=http://127.0.0.2:{port}/"),
    ]
    urls.append(f"http://0x7f000002:{port}/")  # for Slack
    literal = [{"type": "call_webhook", "url": url} for url in urls[:-1]]
    literal.append({"type": "send_slack_message", "webhook_url": urls[-1], "text": "hi"})
    status, refused = await api.call("POST", "/api/v1/workflows", workflow(acme, "ssrf", literal))
    assert status == 422, refused
    assert [p["loc"] for p in refused["problems"]] == [
        *(f"actions.{n}.url" for n in range(8)),  # the redirect's host is allowlisted
        "actions.9.webhook_url",
    ]
    # Addresses that come from the record are judged when called, each attempt.
    actions = [{"type": "call_webhook", "url": f"{{{{record.url_{n}}}}}"} for n in range(9)]
    actions.append({"type": "send_slack_message", "webhook_url": "{{record.url_9}}", "text": "hi"})
    await api.create(workflow(acme, "ssrf", actions))
    lead = lead_created(acme, 1)
    lead["after"] |= {f"url_{n}": url for n, url in enumerate(urls)}
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead)])

    records = await read_until(bootstrap, [RUNS], lambda rs: bool(completed(rs)), keep=of(acme))
    [run] = completed(records)
    assert run["status"] == "failed"
    errors = [step["error"] for step in run["actions"]]
    assert all(step["attempts"] == 1 for step in run["actions"])
    assert all("refusing to call" in e for e in errors[:8]), errors
    assert errors[8] == "the peer answered HTTP 302; redirects are not followed"
    assert "refusing to call" in errors[9]
    assert peers.canary.connections == 0


def on_change(acme: str, name: str, field: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    trigger = {"type": "field_value_changed", "record_type": "lead", "field": field}
    return workflow(acme, name, actions, trigger=trigger)


def lead_updated(acme: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        **lead_created(acme, 1),
        "operation": "updated",
        "before": {**lead_created(acme, 1)["after"], **before},
        "after": {**lead_created(acme, 1)["after"], **after},
    }


def loop_blocked(records: list[Record]) -> bool:
    return any(r.value["status"] == "loop_blocked" for r in records)


def decisions(records: list[Record], workflow_id: str) -> list[tuple[int, str]]:
    return sorted(
        (r.value["depth"], r.value["status"])
        for r in records
        if r.value["workflow_id"] == workflow_id and not r.value.get("completed_at")
    )


async def test_a_workflow_that_updates_its_own_trigger_field_stops_at_the_depth_limit(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    grow = {"type": "update_field", "field": "tag", "value": "{{record.tag}}+"}
    await api.create(on_change(acme, "self", "tag", [grow]))
    await publish(
        bootstrap, RECORD_CHANGES, [(b"L-1", lead_updated(acme, {"tag": ""}, {"tag": "a"}))]
    )

    records = await read_until(bootstrap, [RUNS], loop_blocked, keep=of(acme), within=60)
    # Depth 0 is the person's change; each update the CRM applies is one level deeper.
    assert decisions(records, f"wf-self-{acme}") == [
        *((depth, "actions_issued") for depth in range(9)),
        (9, "loop_blocked"),
    ]
    changes = await read_until(bootstrap, [RECORD_CHANGES], lambda rs: len(rs) >= 10, keep=of(acme))
    assert changes[-1].value["after"]["tag"] == "a" + "+" * 9


async def test_two_workflows_that_trigger_each_other_stop_at_the_depth_limit(
    api: Api, bootstrap: str
) -> None:
    acme = tenant()
    ping = {"type": "update_field", "field": "pong", "value": "{{record.ping}}!"}
    pong = {"type": "update_field", "field": "ping", "value": "{{record.pong}}?"}
    await api.create(on_change(acme, "ping", "ping", [ping]))
    await api.create(on_change(acme, "pong", "pong", [pong]))
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_updated(acme, {}, {"ping": "go"}))])

    records = await read_until(bootstrap, [RUNS], loop_blocked, keep=of(acme), within=60)
    both = sorted(decisions(records, f"wf-ping-{acme}") + decisions(records, f"wf-pong-{acme}"))
    assert both == [*((depth, "actions_issued") for depth in range(9)), (9, "loop_blocked")]
    assert decisions(records, f"wf-ping-{acme}")[0] == (0, "actions_issued")


async def test_the_worker_log_holds_no_addresses_numbers_bodies_or_secrets(
    api: Api, bootstrap: str, peers: Peers, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    address, number = f"private-{acme}@example.com", "+4917699887766"
    body = f"Confidential offer for {acme}"
    await api.create(
        workflow(
            acme,
            "private",
            [
                {"type": "send_email", "to": address, "subject": "Offer", "body": body},
                {"type": "send_sms", "to": number, "body": body},
                {
                    "type": "send_email",
                    "to": f"bounce-{acme}@example.com",
                    "subject": "x",
                    "body": body,
                },
                {"type": "call_webhook", "url": peers.http.url(f"/status/404/{acme}")},
            ],
        )
    )
    await publish(bootstrap, RECORD_CHANGES, [(b"L-1", lead_created(acme, 1))])
    records = await read_until(bootstrap, [RUNS], lambda rs: bool(completed(rs)), keep=of(acme))
    [run] = completed(records)
    assert [a["status"] for a in run["actions"]] == ["succeeded", "succeeded", "failed", "failed"]

    log = shared_worker.log_path.read_text(errors="replace")
    assert run["actions"][2]["action_id"] in log  # the failures are logged, by action id
    for secret in (
        address,
        number,
        body,
        f"bounce-{acme}@example.com",
        SIGNING_SECRET,
        "sms-token",
    ):
        assert secret not in log, f"{secret!r} is in the worker's log"


async def test_a_bad_command_is_dead_lettered_and_the_next_one_performed(
    bootstrap: str, peers: Peers, shared_worker: WorkerProcess
) -> None:
    acme = tenant()
    key = f"{acme}-bad".encode()
    good = make_command(
        "send_slack_message",
        {"webhook_url": peers.http.url(f"/ok/after-bad-{acme}"), "text": "still here"},
        tenant_id=acme,
    )
    topic = action_topic("send_slack_message")
    await publish(
        bootstrap,
        topic,
        [(key, b"{not json"), (key, None), (key, {"action_id": "x"}), (key, good)],
    )
    letters = await read_until(
        bootstrap, [DEAD_LETTER], lambda rs: len(rs) >= 3, keep=lambda r: r.key == key
    )
    assert sorted(r.value["error"].split(":")[0] for r in letters) == [
        "not a valid ActionCommand",
        "not valid UTF-8 JSON",
        "tombstone (null value)",
    ]
    assert all(r.value["source"]["topic"] == topic for r in letters)
    await until(lambda: peers.http.to(f"/ok/after-bad-{acme}"))


async def test_a_fence_on_an_action_topic_is_passed_over(
    bootstrap: str, shared_worker: WorkerProcess
) -> None:
    """A fence (a null value keyed ``FENCE_KEY``: a reader's mark of where "now" is, as the
    bench writes one to time its commands) is no bad command. The bad command behind it in its
    partition is dead-lettered, so the fence was read first; it has no letter of its own."""
    topic = action_topic("send_sms")
    await publish(bootstrap, topic, [(FENCE_KEY, None), (FENCE_KEY, b"{not json")])
    letters = await read_until(
        bootstrap,
        [DEAD_LETTER],
        lambda rs: any(r.value["error"].startswith("not valid UTF-8 JSON") for r in rs),
        keep=lambda r: r.key == FENCE_KEY and r.value["source"]["topic"] == topic,
    )
    assert [r.value["error"].split(":")[0] for r in letters] == ["not valid UTF-8 JSON"]

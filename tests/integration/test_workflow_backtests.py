"""``coeflow workflows apply -f FILE --backtest 7d`` against a running worker and its backtests:
a week of a tenant's leads, a file that raises an active workflow's condition, adds one (whose
every run is a change, those that email listed first) and adds a scheduled one; the
behavioural diffs are the counts the leads' scores say."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web

from coeflow.tools import workflow_backtests as backtests
from coeflow.tools.broker import free_port
from processor.core.backtest import NOT_BACKTESTED
from tests.integration.harness import (
    Api,
    coeflow_workflows,
    email_workflow,
    lead_created,
    publish,
    tenant,
)
from topics.catalog import RECORD_CHANGES

pytestmark = pytest.mark.integration

LEADS = 60


def coeflow(api: Api, *args: str) -> subprocess.CompletedProcess[str]:
    return coeflow_workflows(api, *args, timeout=180)  # a backtest or two each


def scored(acme: str, at_least: int, **overrides: Any) -> dict[str, Any]:
    """A lead workflow of ``acme`` that emails leads scoring ``at_least`` or more, as a file
    holds it."""
    workflow = email_workflow(acme, at_least, **overrides)
    return {k: v for k, v in workflow.items() if k not in ("tenant_id", "version")}


def score(n: int) -> int:
    return (n * 37) % 101


async def test_apply_with_a_backtest_shows_each_changes_behaviour_and_a_dry_run_changes_nothing(
    api: Api, bootstrap: str, tmp_path: Path
) -> None:
    acme = tenant()
    now = datetime.now(UTC)
    leads = [
        lead_created(
            acme,
            n,
            score=score(n),
            occurred_at=(now - timedelta(days=6) + timedelta(hours=2 * n)).isoformat(),
        )
        for n in range(LEADS)
    ]
    await publish(bootstrap, RECORD_CHANGES, [(e["record_id"].encode(), e) for e in leads])
    admin = await api.as_tenant(acme, "write")
    active = scored(acme, 50)
    status, body = await admin.call("POST", "/api/v1/workflows", active)
    assert status == 201 and body["status"] == "active", body

    raised = {**active, "name": "Only the best leads"}
    raised["conditions"] = {"all": [{"field": "score", "op": "gte", "value": 80}]}
    best = scored(acme, 95, id=f"wf-best-{acme}", name="The very best leads", status="draft")
    ticking = scored(
        acme,
        0,
        id=f"wf-tick-{acme}",
        status="draft",
        trigger={"type": "scheduled", "cron": "0 9 * * *"},
    )
    file = tmp_path / "workflows.yaml"
    file.write_text(yaml.safe_dump({"workflows": [raised, best, ticking]}, sort_keys=False))

    dry = await asyncio.to_thread(
        coeflow, admin, "apply", "-f", str(file), "--dry-run", "--backtest", "7d"
    )
    assert dry.returncode == 0, dry.stderr
    out = dry.stdout
    assert dry.stderr == ""  # not a terminal: no progress line
    # Each report follows its own diff, in the file's order.
    marks = [
        f"+++ file/{raised['id']}",
        f"backtest of {raised['id']} over 7d",
        f"+++ file/{best['id']}",
        f"backtest of {best['id']} over 7d",
        f"+++ file/{ticking['id']}",
        f"backtest of {ticking['id']}: not backtested: version: ",
    ]
    assert [out.find(m) for m in marks] == sorted(out.find(m) for m in marks), out
    assert -1 not in [out.find(m) for m in marks], out
    assert NOT_BACKTESTED["scheduled"] in out  # the API's reason, as it says it

    fifty = sum(score(n) >= 50 for n in range(LEADS))
    eighty = sum(score(n) >= 80 for n in range(LEADS))
    top = sum(score(n) >= 95 for n in range(LEADS))
    first, second = _report(out, raised["id"]), _report(out, best["id"])
    assert first[0].endswith(f"): {LEADS} record changes")
    assert _row(first, "this file") == ["v1", "(active)"]
    assert _row(first, "actions_issued") == [str(eighty), str(fifty)]
    assert _row(first, "conditions_not_met") == [str(LEADS - eighty), str(LEADS - fifty)]
    assert _row(first, "send_email") == [str(eighty), str(fifty)]
    assert (
        f"  changed: {fifty - eighty} events, all of them issue other actions (the first 5 below)"
        in first
    )
    changed = [line for line in first if line.startswith("    lead L-")]
    assert len(changed) == 5
    for line in changed:
        assert "record_created: status actions_issued -> conditions_not_met" in line
        assert "(this file: score gte 80 not met); actions send_email -> none" in line
    assert "@example.com" not in out  # the records' values stay in the API

    assert "  no version runs yet: every run it would start is a change" in second
    assert _row(second, "this file") == ["no", "active", "version"]
    assert _row(second, "actions_issued") == [str(top), "0"]
    assert _row(second, "conditions_not_met") == [str(LEADS - top), "0"]
    assert 0 < top < backtests.FIRST_CHANGED < LEADS - top
    assert (
        f"  changed: {LEADS} events, {top} of them issue other actions (the first 5 below, "
        "those first)"
    ) in second
    shown = [line for line in second if line.startswith("    lead L-")]
    assert len(shown) == 5
    assert all("runs only with this file (actions_issued)" in line for line in shown[:top])
    assert all("runs only with this file (conditions_not_met)" in line for line in shown[top:])

    assert out.endswith(
        "would create 2, would update 1, unchanged 0\n"
        "backtested 2 (2 behaving differently), not backtested 1, failed 0\n"
    )
    status, saved = await admin.call("GET", f"/api/v1/workflows/{active['id']}")
    assert status == 200 and saved["version"] == 1
    status, listing = await admin.call("GET", "/api/v1/workflows")
    assert [w["id"] for w in listing["workflows"]] == [active["id"]]

    applied = await asyncio.to_thread(coeflow, admin, "apply", "-f", str(file), "--backtest", "7d")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.endswith(
        "created 2, updated 1, unchanged 0\n"
        "backtested 2 (2 behaving differently), not backtested 1, failed 0\n"
    )
    status, saved = await admin.call("GET", f"/api/v1/workflows/{active['id']}")
    assert status == 200 and saved["version"] == 2 and saved["name"] == "Only the best leads"


async def test_a_window_without_the_tenants_history_is_not_backtested_and_is_no_failure(
    api: Api, tmp_path: Path
) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme, "write")
    file = tmp_path / "workflows.yaml"
    file.write_text(yaml.safe_dump([scored(acme, 50)], sort_keys=False))
    result = await asyncio.to_thread(
        coeflow, admin, "apply", "-f", str(file), "--dry-run", "--backtest", "24h"
    )
    assert result.returncode == 0, result.stderr
    assert f"backtest of {scored(acme, 50)['id']}: not backtested: no record change of this " in (
        result.stdout
    )
    assert result.stdout.endswith(
        "backtested 0 (0 behaving differently), not backtested 1, failed 0\n"
    )


async def test_a_window_that_is_no_duration_is_refused_before_anything_is_asked(
    api: Api, tmp_path: Path
) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme, "write")
    file = tmp_path / "workflows.yaml"
    file.write_text(yaml.safe_dump([scored(acme, 50)], sort_keys=False))
    for window, says in (("7", "is not a window"), ("365d", "longer than the longest window")):
        refused = await asyncio.to_thread(
            coeflow, admin, "apply", "-f", str(file), "--backtest", window
        )
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
        assert refused.stdout == ""
    status, listing = await admin.call("GET", "/api/v1/workflows")
    assert status == 200 and listing["workflows"] == []


class RecordingProxy:
    """The admin API behind a proxy that records each request and its answer, and says when
    the first backtest has been read."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[tuple[str, str, int, Any]] = []
        self.backtest_read = asyncio.Event()
        self.port = free_port()
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RecordingProxy:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._http is not None
        await self._runner.cleanup()
        await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._http.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers=headers,
        ) as answer:
            body = await answer.read()
            status, content_type = answer.status, answer.content_type
        self.seen.append(
            (request.method, request.path, status, orjson.loads(body) if body else None)
        )
        if request.method == "GET" and request.path.startswith("/api/v1/backtests/"):
            self.backtest_read.set()
        return web.Response(body=body, status=status, content_type=content_type)


async def test_ctrl_c_cancels_the_running_backtests_and_changes_nothing(
    api: Api, bootstrap: str, tmp_path: Path
) -> None:
    acme = tenant()
    now = datetime.now(UTC)
    leads = [
        lead_created(acme, n, occurred_at=(now - timedelta(hours=n)).isoformat()) for n in range(20)
    ]
    await publish(bootstrap, RECORD_CHANGES, [(e["record_id"].encode(), e) for e in leads])
    admin = await api.as_tenant(acme, "write")
    file = tmp_path / "workflows.yaml"
    workflows = [scored(acme, 10 * n, id=f"wf-{n}-{acme}") for n in range(2)]
    file.write_text(yaml.safe_dump(workflows, sort_keys=False))

    async with RecordingProxy(api.base_url) as proxy:
        terminal, stderr = pty.openpty()  # stderr a terminal: the progress line is drawn
        env = {**os.environ, "COEFLOW_API_URL": proxy.url, "COEFLOW_API_TOKEN": admin.token or ""}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "coeflow",
            "workflows",
            "apply",
            "-f",
            str(file),
            "--backtest",
            "7d",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        os.close(stderr)
        drawn = asyncio.create_task(asyncio.to_thread(_read_all, terminal))
        await asyncio.wait_for(proxy.backtest_read.wait(), 60)
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        progress = await asyncio.wait_for(drawn, 10)

    assert process.returncode == 130, (out, progress)
    assert "interrupted: the backtests were cancelled; nothing was changed" in progress
    assert f"backtest wf-0-{acme}: " in progress and "\r\x1b[K" in progress
    started = [b["backtest_id"] for m, path, status, b in proxy.seen if path.endswith("/backtest")]
    deleted = [path.rsplit("/", 1)[1] for m, path, _, _ in proxy.seen if m == "DELETE"]
    assert started and sorted(deleted) == sorted(started), proxy.seen
    for backtest_id in started:
        status, backtest = await admin.call("GET", f"/api/v1/backtests/{backtest_id}")
        assert status == 200 and backtest["status"] == "cancelled", backtest
    writes = [(m, path) for m, path, _, _ in proxy.seen if m in ("PUT", "POST")]
    assert all(path.endswith("/backtest") for _, path in writes), writes
    status, listing = await admin.call("GET", "/api/v1/workflows")
    assert status == 200 and listing["workflows"] == []


def _read_all(fd: int) -> str:
    """What a terminal was sent until its other end closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed (EIO)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _report(out: str, workflow_id: str) -> list[str]:
    """The lines of one workflow's backtest report."""
    lines = out.splitlines()
    start = lines.index(
        next(line for line in lines if line.startswith(f"backtest of {workflow_id} "))
    )
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return lines[start:end]


def _row(report: list[str], label: str) -> list[str]:
    """The cells after ``label`` in a report's table of counts."""
    line = next(line for line in report if line.split()[: len(label.split())] == label.split())
    return line.split()[len(label.split()) :]

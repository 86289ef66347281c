from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from coeflow.settings import Settings
from coeflow.tools.workflow_files import (
    AT_ONCE,
    NO_TOKEN,
    AdminClient,
    ApiFailure,
    Change,
    InvalidFile,
    check,
    load,
    main,
    plan,
    portable,
    send_changes,
)
from tests.factories import SEED_WORKFLOW

SEED = {k: v for k, v in SEED_WORKFLOW.items() if k != "version"}


def test_files_hold_a_list_a_mapping_of_workflows_or_one_workflow(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump([SEED]))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text('{"workflows": [{"id": "a"}]}')
    single = tmp_path / "one.yml"
    single.write_text(yaml.safe_dump(SEED))
    assert load(listed) == [SEED] and load(single) == [SEED]
    assert load(wrapped) == [{"id": "a"}]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(InvalidFile, match=r"broken\.json: cannot be read"):
        load(broken)


def test_an_invalid_file_lists_every_problem_at_once() -> None:
    bad_operator = {**SEED, "id": "wf-a", "conditions": {"field": "score", "op": "bigger"}}
    no_id = {k: v for k, v in SEED.items() if k != "id"}
    no_subject = {**SEED, "id": "wf-b", "actions": [{"type": "send_email", "to": "x"}]}
    with pytest.raises(InvalidFile) as caught:
        check([bad_operator, no_id, no_subject, {**SEED, "id": "wf-a"}, "text"])
    assert [p.loc for p in caught.value.problems] == [
        "workflows.0.conditions.op",
        "workflows.1.id",
        "workflows.2.actions.0.to",
        "workflows.2.actions.0.subject",
        "workflows.2.actions.0.body",
        "workflows.3.id",
        "workflows.4",
    ]
    assert "unknown operator 'bigger'" in str(caught.value)
    assert "'wf-a' is in the file twice" in str(caught.value)


def test_a_file_without_tenants_is_valid_for_a_tenants_token() -> None:
    assert check([{k: v for k, v in SEED.items() if k != "tenant_id"}])


def current(**changes: Any) -> dict[str, Any]:
    """The seed as the API answers it: with server fields."""
    return {**SEED, "version": 4, "updated_at": "2026-11-25T19:00:00Z", **changes}


def test_apply_creates_the_new_updates_the_changed_and_leaves_the_rest() -> None:
    renamed = {**SEED, "id": "wf-2", "name": "Renamed"}
    fresh = {**SEED, "id": "wf-3"}
    changes = plan(
        [SEED, renamed, fresh],
        {"wf-welcome": current(), "wf-2": current(id="wf-2")},
    )
    assert [(c.kind, c.workflow_id) for c in changes] == [
        ("unchanged", "wf-welcome"),
        ("update", "wf-2"),
        ("create", "wf-3"),
    ]
    update = changes[1]
    assert update.version == 4
    assert f"-name: {SEED['name']}" in update.diff and "+name: Renamed" in update.diff
    assert changes[2].diff.startswith("--- api/wf-3\n+++ file/wf-3\n")
    assert changes[0].diff == ""


def test_what_a_file_leaves_out_or_spells_as_the_default_changes_nothing() -> None:
    bare = {k: v for k, v in SEED.items() if k not in ("status", "tenant_id", "conditions")}
    active = current(status="active", conditions=None)
    assert [c.kind for c in plan([bare], {"wf-welcome": active})] == ["unchanged"]
    exported = portable(current())
    assert "version" not in exported and "updated_at" not in exported
    assert [c.kind for c in plan([exported], {"wf-welcome": current()})] == ["unchanged"]


class _SlowApi:
    """An admin API whose every write takes a while; counts the writes in flight at once and
    refuses the workflow ids in ``refused``."""

    def __init__(self, refused: frozenset[str] = frozenset()) -> None:
        self.refused = refused
        self.calls: list[tuple[str, str]] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        with self._lock:
            self.calls.append((method, path))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.02)
            if body["id"] in self.refused:
                raise ApiFailure(f"{method} {path}: 409 taken")
            return body
        finally:
            with self._lock:
                self.in_flight -= 1


def _creates(count: int) -> list[Change]:
    return [Change("create", f"wf-{n}", {**SEED, "id": f"wf-{n}"}) for n in range(count)]


def test_apply_sends_its_writes_several_at_a_time() -> None:
    api = _SlowApi()
    updates = [Change("update", "wf-u", {**SEED, "id": "wf-u"}, version=3)]
    began = time.monotonic()
    send_changes(api, [*_creates(40), *updates])  # type: ignore[arg-type]
    took = time.monotonic() - began
    assert api.most_in_flight == AT_ONCE
    assert sorted(api.calls) == sorted(
        [*(("POST", "/workflows") for _ in range(40)), ("PUT", "/workflows/wf-u")]
    )
    # One after another, the writes' sleeps alone take 41 × 20 ms; several at a time take a
    # fraction of it. Half of it was the bound, and a loaded machine (the suite beside a
    # browser) took 0.54 s: the sleeps' sum is what only sequential writes must exceed.
    assert took < 41 * 0.02


def test_after_a_refusal_apply_starts_no_more_writes_and_raises_it() -> None:
    api = _SlowApi(refused=frozenset({"wf-2"}))
    with pytest.raises(ApiFailure, match="409 taken"):
        send_changes(api, _creates(100))  # type: ignore[arg-type]
    assert len(api.calls) < 100
    assert len(api.calls) <= 2 + 2 * AT_ONCE  # those already in flight, and one more round


@pytest.mark.parametrize(
    "args",
    [
        ["export"],
        ["export", "-o", "out.yaml"],
        ["apply", "-f", "workflows.yaml"],
        ["apply", "-f", "workflows.yaml", "--dry-run", "--backtest", "7d"],
    ],
)
def test_every_command_without_a_token_says_which_variable_to_set(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("COEFLOW_API_TOKEN", "COEFLOW_ADMIN_TOKEN", "COEFLOW_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workflows.yaml").write_text(yaml.safe_dump([SEED]))
    # Nothing listens there: a request would fail as unreachable, not as a missing token.
    settings = Settings(_env_file=None, api_url="http://127.0.0.1:9")
    assert main(args, settings) == 2
    err = capsys.readouterr().err
    assert err == f"{NO_TOKEN}\n"
    assert "set COEFLOW_API_TOKEN to a tenant's token, or COEFLOW_ADMIN_TOKEN" in err
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize(
    ("tokens", "says"),
    [
        ({"api_token": "t-1"}, "the token in COEFLOW_API_TOKEN was refused"),
        (
            {"api_token": "t-1", "admin_token": "op-secret-1"},
            "the token in COEFLOW_API_TOKEN was refused",
        ),
        ({"admin_token": "op-secret-1"}, "the token in COEFLOW_ADMIN_TOKEN was refused"),
        ({}, NO_TOKEN),
    ],
)
def test_a_refused_token_names_the_variable_it_came_from(
    tokens: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("COEFLOW_API_TOKEN", "COEFLOW_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = AdminClient(Settings.model_validate(tokens))
    sent: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("Authorization"))
        return httpx.Response(401, json={"error": "invalid bearer token"})

    client.http = httpx.Client(
        base_url="http://api.test",
        headers=client.http.headers,
        transport=httpx.MockTransport(answer),
    )
    with pytest.raises(ApiFailure) as caught:
        client.workflows(None)
    assert str(caught.value).startswith(f"GET /workflows: 401 invalid bearer token\n  {says}")
    assert caught.value.hint.startswith(says) and caught.value.status == 401
    token = tokens.get("api_token") or tokens.get("admin_token")
    assert sent == [f"Bearer {token}" if token else None]
    assert token is None or token not in str(caught.value)


def test_the_file_the_readme_has_a_newcomer_export_is_ignored_at_the_root_only() -> None:
    """The README's `coeflow workflows export > workflows.yaml` writes into the checkout."""
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        check = ["git", "-C", str(root), "check-ignore", "--no-index", "-q", path]
        return subprocess.run(check, check=False).returncode == 0

    assert ignored("workflows.yaml")
    assert not ignored("examples/workflows.yaml") and not ignored("workflows.yml")
    assert not ignored("tests/coeflow/tools/test_workflow_files.py")

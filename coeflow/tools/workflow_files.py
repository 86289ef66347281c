"""``coeflow workflows export`` and ``coeflow workflows apply -f FILE``: workflows as YAML or
JSON files, through the admin API.

``apply`` checks the whole file first (every problem listed, nothing changed when there is
one), then shows what it changes as a diff and creates or updates only what differs, so
applying the same file twice changes nothing the second time. It never deletes a workflow
missing from the file. With ``--backtest``, each change's diff is followed by its behavioural
diff (``workflow_backtests.py``).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import httpx
import orjson
import yaml
from pydantic import ValidationError

from coeflow.errors import InvalidInput, InvalidWorkflow, Problem
from coeflow.settings import Settings
from coeflow.tools import workflow_backtests as backtests
from processor.core.compiler import validate_workflow
from topics.api import SERVER_FIELDS
from topics.workflows import Workflow

_NOT_IN_FILES = (*SERVER_FIELDS, "version")
"""What the server sets: an exported file leaves it out, an applied one may have it."""
_PLACEHOLDER_TENANT = "tenant-of-the-token"


class InvalidFile(InvalidInput):
    summary = "invalid workflow file"


class ApiFailure(Exception):
    """The admin API refused a request; the message is its answer, ``status`` its HTTP
    status (``None``: it could not be reached) and ``answer`` its JSON body."""

    def __init__(
        self, message: str, status: int | None = None, answer: Any = None, hint: str = ""
    ) -> None:
        super().__init__(f"{message}\n  {hint}" if hint else message)
        self.status, self.answer, self.hint = status, answer, hint


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["create", "update", "unchanged"]
    workflow_id: str
    document: dict[str, Any]
    diff: str = ""
    version: int | None = None
    """The version an update is based on (the API refuses it if someone changed it since)."""


def load(path: Path) -> list[dict[str, Any]]:
    """Workflows from a YAML or JSON file: a list, ``{"workflows": [...]}`` or one workflow."""
    try:
        text = path.read_text(encoding="utf-8")
        parsed = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidFile([Problem(str(path), f"cannot be read: {exc}")]) from None
    if isinstance(parsed, dict) and isinstance(parsed.get("workflows"), list):
        parsed = parsed["workflows"]
    elif isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise InvalidFile([Problem(str(path), "must hold a list of workflows")])
    return parsed


def check(documents: list[Any]) -> list[dict[str, Any]]:
    """Every workflow of a file validated and compiled as the API would; ``InvalidFile``
    with every problem, located as ``workflows.<index>.<field>``."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, document in enumerate(documents):
        where = f"workflows.{index}"
        if not isinstance(document, dict):
            problems.append(Problem(where, "must be an object"))
            continue
        workflow_id = document.get("id")
        if not isinstance(workflow_id, str):
            problems.append(Problem(f"{where}.id", "is required in a file (apply matches by it)"))
        elif workflow_id in seen:
            problems.append(Problem(f"{where}.id", f"{workflow_id!r} is in the file twice"))
        else:
            seen.add(workflow_id)
        body = {k: v for k, v in document.items() if k not in _NOT_IN_FILES}
        body.setdefault("tenant_id", _PLACEHOLDER_TENANT)
        body.setdefault("id", "placeholder")
        try:
            validate_workflow(body)
        except InvalidWorkflow as exc:
            problems += [Problem(f"{where}.{p.loc}", p.msg) for p in exc.problems]
    if problems:
        raise InvalidFile(problems)
    return documents


def portable(workflow: dict[str, Any]) -> dict[str, Any]:
    """A workflow as files hold it: without what the server sets."""
    return {k: v for k, v in workflow.items() if k not in _NOT_IN_FILES}


def plan(desired: list[dict[str, Any]], current: dict[str, dict[str, Any]]) -> list[Change]:
    """What applying ``desired`` changes, given the API's ``current`` workflows by id. What
    a file leaves out (status, tenant) stays as it is."""
    changes = []
    for document in desired:
        wanted = portable(document)
        existing = current.get(wanted["id"])
        if existing is None:
            changes.append(Change("create", wanted["id"], wanted, _diff({}, wanted, wanted["id"])))
            continue
        now = portable(existing)
        wanted = {**wanted, **{k: now[k] for k in ("status", "tenant_id") if k not in wanted}}
        if _normal(wanted) == _normal(now):
            changes.append(Change("unchanged", wanted["id"], wanted))
        else:
            diff = _diff(now, wanted, wanted["id"])
            changes.append(Change("update", wanted["id"], wanted, diff, existing["version"]))
    return changes


def _normal(document: dict[str, Any]) -> Any:
    """A workflow with defaults filled in, so a file that spells a default out and one that
    leaves it to the server compare equal."""
    try:
        workflow = Workflow.model_validate(document)
    except ValidationError:
        return document
    return workflow.model_dump(mode="json", by_alias=True, exclude=set(_NOT_IN_FILES))


def _diff(before: dict[str, Any], after: dict[str, Any], name: str) -> str:
    """Both sides as the workflow model orders and fills them: only real changes show."""
    old = _yaml(_normal(before)).splitlines(keepends=True) if before else []
    new = _yaml(_normal(after)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, f"api/{name}", f"file/{name}"))


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


NO_TOKEN = (
    "no token for the admin API: set COEFLOW_API_TOKEN to a tenant's token, or "
    "COEFLOW_ADMIN_TOKEN to the operator's (`coeflow dev` prints the one it makes); "
    "see docs/settings.md"
)
"""What every ``coeflow workflows`` command says without a token (the API answers 401 to
every request without one), before asking the API anything."""


class AdminClient:
    def __init__(self, settings: Settings) -> None:
        self.token_from: str | None = "COEFLOW_API_TOKEN"
        """The variable the token came from (``None``: no token)."""
        token = settings.api_token
        if not token:
            token, self.token_from = settings.admin_token, "COEFLOW_ADMIN_TOKEN"
        if not token:
            self.token_from = None
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self.http = httpx.Client(base_url=settings.admin_api_url, headers=headers, timeout=30)

    def _hint(self, status: int) -> str:
        """What to do about a 401: which variable's token was refused, or which to set."""
        if status != 401:
            return ""
        if self.token_from is None:
            return NO_TOKEN
        return (
            f"the token in {self.token_from} was refused (revoked, mistyped, or of another "
            "run of `coeflow dev`): set it to a valid token; see docs/settings.md"
        )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.http.request(
                method, f"/api/v1{path}", content=orjson.dumps(body) if body is not None else None
            )
        except httpx.HTTPError as exc:
            raise ApiFailure(f"cannot reach the admin API at {self.http.base_url}: {exc}") from None
        answer = response.json() if response.content else None
        if response.status_code >= 400:
            problems = "".join(
                f"\n  {p['loc']}: {p['msg']}" for p in (answer or {}).get("problems") or []
            )
            error = (answer or {}).get("error", response.reason_phrase)
            raise ApiFailure(
                f"{method} {path}: {response.status_code} {error}{problems}",
                response.status_code,
                answer,
                self._hint(response.status_code),
            )
        return answer

    def workflows(self, tenant: str | None) -> list[dict[str, Any]]:
        query = f"?tenant_id={tenant}" if tenant else ""
        return list(self.call("GET", f"/workflows{query}")["workflows"])


def export(client: AdminClient, tenant: str | None, fmt: str, out: TextIO) -> int:
    workflows = [portable(w) for w in client.workflows(tenant)]
    if fmt == "json":
        out.write(orjson.dumps({"workflows": workflows}, option=orjson.OPT_INDENT_2).decode())
        out.write("\n")
    else:
        out.write(_yaml({"workflows": workflows}))
    return 0


BACKTEST_FAILED = 3
"""``apply --backtest``'s exit status when a backtest failed (the others are reported, and
nothing was changed)."""
INTERRUPTED = 130
"""Ctrl-C during the backtests: the started ones are cancelled, nothing was changed."""


def apply(
    client: AdminClient,
    path: Path,
    dry_run: bool,
    out: TextIO,
    backtest: backtests.Window | None = None,
    progress: TextIO | None = None,
) -> int:
    """Apply a file; with ``backtest``, each change's behavioural diff over that window
    after its textual diff, and nothing changed if a backtest failed (``BACKTEST_FAILED``).
    ``progress``: a terminal for the backtests' progress line."""
    desired = check(load(path))
    current = {w["id"]: w for w in client.workflows(None)}
    changes = plan(desired, current)
    outcomes = (
        _with_backtests(client, changes, backtest, out, progress)
        if backtest is not None
        else _diffs(changes, out)
    )
    failed = [o for o in outcomes if o.ending not in ("done", "not_backtested")]
    if failed:
        ids = ", ".join(o.workflow_id for o in failed[:5]) + (", …" if len(failed) > 5 else "")
        _summary(changes, True, out)
        out.write(f"{_backtest_counts(outcomes)}\n")
        changing = "; nothing was changed" if not dry_run else ""
        sys.stderr.write(f"the backtest of {ids} did not finish{changing}\n")
        return BACKTEST_FAILED
    if not dry_run:
        send_changes(client, [c for c in changes if c.kind != "unchanged"])
    _summary(changes, dry_run, out)
    if backtest is not None:
        out.write(f"{_backtest_counts(outcomes)}\n")
    return 0


def _diffs(changes: Sequence[Change], out: TextIO) -> list[backtests.Outcome]:
    for change in changes:
        out.write(change.diff)
    return []


def _with_backtests(
    client: AdminClient,
    changes: Sequence[Change],
    window: backtests.Window,
    out: TextIO,
    terminal: TextIO | None,
) -> list[backtests.Outcome]:
    """Each change's diff, then its backtest's report once it (and every one before it) is
    known. Ctrl-C cancels the started backtests and raises ``KeyboardInterrupt``."""
    progress = backtests.Progress(terminal)
    runner = backtests.Backtests(client, backtests.since(window), progress=progress)
    asked = [backtests.Asked(c.workflow_id, c.document) for c in changes if c.kind != "unchanged"]
    results = runner.run(asked)
    outcomes = []
    try:
        for change in changes:
            outcome = next(results) if change.kind != "unchanged" else None
            with progress.paused():
                out.write(change.diff)
                if outcome is not None:
                    out.write(backtests.report(outcome, window))
                    outcomes.append(outcome)
                out.flush()
    finally:
        results.close()  # after Ctrl-C here: the started backtests are cancelled
    return outcomes


def _summary(changes: Sequence[Change], dry_run: bool, out: TextIO) -> None:
    counts = {kind: sum(c.kind == kind for c in changes) for kind in ("create", "update")}
    unchanged = len(changes) - sum(counts.values())
    verb = "would create" if dry_run else "created"
    out.write(
        f"{verb} {counts['create']}, {'would update' if dry_run else 'updated'} "
        f"{counts['update']}, unchanged {unchanged}\n"
    )


def _backtest_counts(outcomes: Sequence[backtests.Outcome]) -> str:
    done = [o for o in outcomes if o.ending == "done"]
    differing = sum(
        o.backtest is not None
        and o.backtest.result is not None
        and o.backtest.result.changed_count > 0
        for o in done
    )
    refused = sum(o.ending == "not_backtested" for o in outcomes)
    failed = len(outcomes) - len(done) - refused
    return (
        f"backtested {len(done)} ({differing} behaving differently), "
        f"not backtested {refused}, failed {failed}"
    )


AT_ONCE = 8
"""Requests of an ``apply`` in flight together. Each write answers once the worker has read
it back, a round trip through the broker; one after another, a thousand workflows were a
thousand round trips end to end."""


def send_changes(client: AdminClient, changes: Sequence[Change]) -> None:
    """Make ``changes`` through the API, ``AT_ONCE`` at a time; after a refusal none is
    started, those in flight finish, and the first refusal is raised (what was made stays)."""
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        pending: set[Future[Any]] = set()
        failure: ApiFailure | None = None
        for change in changes:
            if len(pending) >= AT_ONCE:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                failure = failure or _refusal(done)
            if failure is not None:
                break
            pending.add(pool.submit(_send, client, change))
        done, _ = wait(pending)
        failure = failure or _refusal(done)
    if failure is not None:
        raise failure


def _send(client: AdminClient, change: Change) -> None:
    if change.kind == "create":
        client.call("POST", "/workflows", change.document)
    else:
        body = {**change.document, "version": change.version}
        client.call("PUT", f"/workflows/{change.workflow_id}", body)


def _refusal(done: set[Future[Any]]) -> ApiFailure | None:
    """The first refusal among ``done`` (any other error is raised as it is)."""
    for future in done:
        exc = future.exception()
        if isinstance(exc, ApiFailure):
            return exc
        if exc is not None:
            raise exc
    return None


def main(argv: Sequence[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="coeflow workflows",
        description="Workflows as files, through the admin API (COEFLOW_API_URL, "
        "COEFLOW_API_TOKEN or COEFLOW_ADMIN_TOKEN): export them as YAML or JSON, or apply a "
        "file, which creates or updates the workflows that differ (--dry-run shows the diff "
        "and changes nothing; --backtest 7d adds what each change would have done over the "
        "last 7 days).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export", help="write the workflows to a file or stdout")
    exporting.add_argument("-o", "--output", type=Path, help="file (default: stdout)")
    exporting.add_argument("--format", choices=("yaml", "json"), help="default: by extension")
    exporting.add_argument("--tenant", help="operators: only this tenant's workflows")
    applying = commands.add_parser("apply", help="create or update the workflows of a file")
    applying.add_argument("-f", "--file", type=Path, required=True)
    applying.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    applying.add_argument(
        "--backtest",
        metavar="WINDOW",
        type=backtests.parse_window,
        help="after each changed workflow's diff, what it would have done over the last "
        "WINDOW of record changes (24h, 7d, 2w; at most "
        f"{backtests.MAX_WINDOW.days}d) against the active version; a failed backtest "
        f"changes nothing (exit {BACKTEST_FAILED})",
    )
    args = parser.parse_args(argv)
    client = AdminClient(settings)
    if client.token_from is None:
        sys.stderr.write(f"{NO_TOKEN}\n")
        return 2
    try:
        if args.command == "apply":
            terminal = sys.stderr if sys.stderr.isatty() else None
            return apply(client, args.file, args.dry_run, sys.stdout, args.backtest, terminal)
        fmt = args.format or ("json" if args.output and args.output.suffix == ".json" else "yaml")
        if args.output is None:
            return export(client, args.tenant, fmt, sys.stdout)
        with args.output.open("w", encoding="utf-8") as out:
            return export(client, args.tenant, fmt, out)
    except InvalidFile as exc:
        sys.stderr.write(f"{exc.summary}; nothing was changed:\n")
        sys.stderr.writelines(f"  {p}\n" for p in exc.problems)
        return 1
    except ApiFailure as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except KeyboardInterrupt:
        if args.command == "apply" and args.backtest is not None:
            sys.stderr.write("\ninterrupted: the backtests were cancelled; nothing was changed\n")
            return INTERRUPTED
        raise

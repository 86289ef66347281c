"""``coeflow workflows apply -f FILE`` and ``export`` against a running worker, as a tenant."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from tests.integration.harness import Api, coeflow_workflows, seed_workflow, tenant

pytestmark = pytest.mark.integration


def portable(workflow: dict) -> dict:
    return {k: v for k, v in workflow.items() if k not in ("tenant_id", "version", "updated_at")}


async def test_apply_is_idempotent_shows_a_diff_and_export_gives_the_file_back(
    api: Api, tmp_path: Path
) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme, "write")
    welcome = portable(seed_workflow(acme))
    second = {**welcome, "id": f"wf-second-{acme}", "name": "Second"}
    file = tmp_path / "workflows.yaml"
    file.write_text(yaml.safe_dump({"workflows": [welcome, second]}, sort_keys=False))

    first = await asyncio.to_thread(coeflow_workflows, admin, "apply", "-f", str(file))
    assert first.returncode == 0, first.stderr
    assert first.stdout.endswith("created 2, updated 0, unchanged 0\n")
    assert f"+++ file/{second['id']}" in first.stdout

    again = await asyncio.to_thread(coeflow_workflows, admin, "apply", "-f", str(file))
    assert again.returncode == 0 and again.stdout == "created 0, updated 0, unchanged 2\n"

    file.write_text(yaml.safe_dump([welcome, {**second, "name": "Second, renamed"}]))
    dry = await asyncio.to_thread(coeflow_workflows, admin, "apply", "-f", str(file), "--dry-run")
    assert "-name: Second\n+name: Second, renamed\n" in dry.stdout
    assert dry.stdout.endswith("would create 0, would update 1, unchanged 1\n")
    changed = await asyncio.to_thread(coeflow_workflows, admin, "apply", "-f", str(file))
    assert changed.stdout.endswith("created 0, updated 1, unchanged 1\n")
    status, saved = await admin.call("GET", f"/api/v1/workflows/{second['id']}")
    assert status == 200 and (saved["name"], saved["version"]) == ("Second, renamed", 2)

    exported = await asyncio.to_thread(coeflow_workflows, admin, "export")
    assert exported.returncode == 0, exported.stderr
    listed = yaml.safe_load(exported.stdout)["workflows"]
    assert [w["name"] for w in listed] == ["Second, renamed", welcome["name"]]
    assert all("version" not in w and "updated_at" not in w for w in listed)
    out = tmp_path / "exported.json"
    assert (
        await asyncio.to_thread(coeflow_workflows, admin, "export", "-o", str(out))
    ).returncode == 0
    assert out.read_text().startswith('{\n  "workflows": [')


async def test_an_invalid_file_changes_nothing_and_lists_every_problem(
    api: Api, tmp_path: Path
) -> None:
    acme = tenant()
    admin = await api.as_tenant(acme, "write")
    good = portable(seed_workflow(acme))
    bad = {**good, "id": f"wf-bad-{acme}", "conditions": {"field": "score", "op": "bigger"}}
    file = tmp_path / "workflows.json"
    file.write_text(json.dumps([good, bad, {"name": "no id"}]))
    result = await asyncio.to_thread(coeflow_workflows, admin, "apply", "-f", str(file))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("invalid workflow file; nothing was changed:\n")
    for where in ("workflows.1.conditions.op", "workflows.2.id", "workflows.2.trigger"):
        assert f"  {where}: " in result.stderr
    status, listing = await admin.call("GET", "/api/v1/workflows")
    assert status == 200 and listing["workflows"] == []

    reader = await api.as_tenant(acme, "read")
    file.write_text(json.dumps([good]))
    refused = await asyncio.to_thread(coeflow_workflows, reader, "apply", "-f", str(file))
    assert refused.returncode == 2 and "403 this token's scope is 'read'" in refused.stderr

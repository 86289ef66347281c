"""The admin API fuzzed from its own OpenAPI document (schemathesis): whatever a client sends,
the answer is never a 5xx. Runs as a tenant's admin token, so what the fuzzer creates stays in
its own tenant."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from coeflow.tools.processes import WorkerProcess
from processor.api.openapi import document
from tests.integration.harness import Api, tenant

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_dict(document())


@pytest.fixture(scope="module")
def fuzzing(shared_worker: WorkerProcess) -> tuple[str, dict[str, str]]:
    client = asyncio.run(Api(shared_worker.url).as_tenant(tenant()))
    assert client.token is not None
    return shared_worker.url, {"Authorization": f"Bearer {client.token}"}


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_request_gets_a_server_error(case, fuzzing: tuple[str, dict[str, str]]) -> None:
    base_url, headers = fuzzing
    response = case.call(base_url=base_url, headers=headers, timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
        f"{response.status_code} {response.text}"
    )

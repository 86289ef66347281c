"""The command line as a person uses it: `coeflow dev --demo`, `coeflow broker`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from coeflow.broker import free_port, port_in_use
from coeflow.cli import dev_settings
from coeflow.settings import Settings


def test_dev_defaults_make_a_token_and_a_fast_group_join() -> None:
    settings = dev_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert settings.admin_token is not None and len(settings.admin_token.get_secret_value()) > 20
    assert settings.group_session_timeout == 2.0 and settings.log_runs


def test_dev_signs_webhooks_and_delivers_to_its_own_outbox_and_sink() -> None:
    settings = dev_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert settings.webhook_signing_secret is not None
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_tls) == (
        "127.0.0.1",
        2525,
        "none",
    )
    assert settings.sms_api_url == "http://127.0.0.1:6067/sms"
    assert settings.roles == {"processor", "executors"}
    demo = dev_settings(Settings(_env_file=None), demo=True)  # type: ignore[call-arg]
    assert demo.roles == {"processor", "executors", "crm-simulator"}


def test_dev_keeps_what_was_set_explicitly() -> None:
    explicit = Settings(
        kafka_bootstrap="kafka:9092",
        admin_token=SecretStr("mine"),
        log_runs=False,
        smtp_host="mail.internal",
        roles="executors",
    )
    settings = dev_settings(explicit, demo=True)
    assert settings.admin_token == SecretStr("mine") and settings.log_runs is False
    assert settings.smtp_host == "mail.internal" and settings.roles == {"executors"}
    assert settings.group_session_timeout == 10.0  # a real Kafka keeps the real default


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}:\n{content[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {within}s:\n{log.read_text()[-3000:]}")


@pytest.mark.integration
@pytest.mark.skipif(port_in_use("127.0.0.1", 9092), reason="127.0.0.1:9092 is taken (make run?)")
def test_coeflow_dev_demo_runs_the_product_and_stops_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEFLOW_")}
    env["COEFLOW_WEB_PORT"] = str(free_port())
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coeflow", "dev", "--demo"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        content = wait_for_line(log, "] ready: ", process, within=60)
        assert "embedded Kafka-API broker (Tansu) on 127.0.0.1:9092" in content
        assert "Authorization: Bearer " in content
        content = wait_for_line(log, "run wf-welcome v1 on lead", process, within=60)
        assert "(record_created): " in content
        wait_for_line(log, "outbox: email to ", process, within=30)
        content = wait_for_line(log, "] progress: ", process, within=30)
        assert "actions: " in content
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    assert not port_in_use("127.0.0.1", 9092), "the embedded broker outlived coeflow dev"
    assert "Traceback" not in log.read_text()


@pytest.mark.integration
def test_coeflow_broker_serves_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "broker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coeflow", "broker", "--port", str(port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_line(log, f"listening on 127.0.0.1:{port}", process, within=30)
        assert port_in_use("127.0.0.1", port)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
    assert not port_in_use("127.0.0.1", port)


def test_coeflow_dev_says_when_kafka_cannot_be_reached(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEFLOW_")}
    env["COEFLOW_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "coeflow", "dev"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert b"cannot reach Kafka at 127.0.0.1:" in result.stdout
    assert b"Traceback" not in result.stdout + result.stderr

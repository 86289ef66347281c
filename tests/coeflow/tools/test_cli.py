"""The command line as a person uses it: `coeflow dev --demo`, `coeflow broker`."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from coeflow.settings import Settings
from coeflow.tools.broker import can_listen, free_port, port_in_use
from coeflow.tools.cli import (
    admin_api_line,
    dev_peer_ports,
    dev_ports,
    dev_settings,
    made_by_dev,
    peers_lines,
    signing_line,
    taken_ports,
    web_app_line,
)
from coeflow.tools.dev_peers import DevPeers, DevPort, PortTaken
from coeflow.tools.output import SturdyStream

PORT_SETTINGS = (
    "COEFLOW_WEB_PORT",
    "COEFLOW_DEV_BROKER_PORT",
    "COEFLOW_DEV_SMTP_PORT",
    "COEFLOW_DEV_SINK_PORT",
)


def distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def dev_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """An environment for `coeflow dev` that collides with no `make run` and no other test:
    no COEFLOW_* of the caller's, every port `dev` listens on a free one, its own data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEFLOW_")}
    env |= dict(zip(PORT_SETTINGS, map(str, distinct_free_ports(len(PORT_SETTINGS))), strict=True))
    env["COEFLOW_DATA_DIR"] = str(tmp_path / "data")
    return env | settings


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


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
    assert settings.roles == {"processor", "api", "executors"}
    demo = dev_settings(Settings(_env_file=None), demo=True)  # type: ignore[call-arg]
    assert demo.roles == {"processor", "api", "executors", "crm-simulator"}


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


def test_dev_points_email_and_sms_at_its_moved_outbox_and_sink() -> None:
    settings = dev_settings(Settings(_env_file=None, dev_smtp_port=3525, dev_sink_port=7067))  # type: ignore[call-arg]
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 3525)
    assert settings.sms_api_url == "http://127.0.0.1:7067/sms"
    outbox, sink = dev_peer_ports(settings)
    assert outbox == DevPort("the local SMTP outbox", "127.0.0.1", 3525, "COEFLOW_DEV_SMTP_PORT")
    assert sink == DevPort("the local HTTP sink", "127.0.0.1", 7067, "COEFLOW_DEV_SINK_PORT")


def test_dev_prints_the_secrets_it_made() -> None:
    configured = Settings(_env_file=None)  # type: ignore[call-arg]
    settings = dev_settings(configured)
    made = made_by_dev(configured, settings)
    token = settings.admin_token.get_secret_value() if settings.admin_token else "?"
    secret = settings.webhook_signing_secret
    assert made == {
        "admin_token": token,
        "webhook_signing_secret": secret.get_secret_value() if secret else "?",
    }
    line = admin_api_line("http://127.0.0.1:6066", made)
    assert f"Authorization: Bearer {token}" in line and line.startswith("✓ admin API on ")
    web = web_app_line("http://127.0.0.1:6066", made)
    assert web.startswith("✓ web app on http://127.0.0.1:6066/ ") and token in web
    assert made["webhook_signing_secret"] in (signing_line(made) or "")


def test_dev_never_prints_a_secret_the_operator_set() -> None:
    configured = Settings(
        _env_file=None,  # type: ignore[call-arg]
        admin_token=SecretStr("operator-token-1234"),
        webhook_signing_secret=SecretStr("operator-secret-5678"),
    )
    settings = dev_settings(configured)
    assert settings.admin_token == SecretStr("operator-token-1234")
    made = made_by_dev(configured, settings)
    assert made == {}
    line = admin_api_line("http://127.0.0.1:6066", made)
    assert "operator-token" not in line and "Bearer" not in line
    assert "operator-token" not in web_app_line("http://127.0.0.1:6066", made)
    assert "COEFLOW_ADMIN_TOKEN" in line
    assert signing_line(made) is None
    only_token = Settings(_env_file=None, admin_token=SecretStr("operator-token-1234"))  # type: ignore[call-arg]
    assert set(made_by_dev(only_token, dev_settings(only_token))) == {"webhook_signing_secret"}


def test_dev_runs_no_outbox_or_sink_when_email_and_sms_go_elsewhere() -> None:
    elsewhere = Settings(
        _env_file=None,  # type: ignore[call-arg]
        smtp_host="mail.internal",
        sms_api_url="https://sms.example/send",
    )
    assert dev_peer_ports(dev_settings(elsewhere)) == (None, None)
    assert peers_lines(dev_settings(elsewhere)) == []
    # The demo's Slack workflow posts to the sink's default port: the sink runs for it alone.
    outbox, sink = dev_peer_ports(dev_settings(elsewhere, demo=True), demo=True)
    assert outbox is None and sink is not None and sink.port == 6067
    assert peers_lines(dev_settings(elsewhere, demo=True), demo=True) == [
        "✓ the demo's Slack posts go to a local sink (http://127.0.0.1:6067/); "
        "it logs what it receives"
    ]
    email_only = dev_settings(elsewhere.model_copy(update={"smtp_host": None}))
    outbox, sink = dev_peer_ports(email_only)
    assert outbox is not None and outbox.port == 2525 and sink is None
    no_executors = dev_settings(Settings(_env_file=None, roles="processor"), demo=True)  # type: ignore[call-arg]
    assert dev_peer_ports(no_executors, demo=True) == (None, None)


def test_a_moved_sink_says_the_demo_slack_posts_do_not_follow() -> None:
    settings = dev_settings(Settings(_env_file=None, dev_sink_port=7067), demo=True)  # type: ignore[call-arg]
    _, sink = dev_peer_ports(settings, demo=True)
    assert sink is not None and sink.port == 7067  # for SMS
    first, warning = peers_lines(settings, demo=True)
    assert "SMS to a local sink (http://127.0.0.1:7067/)" in first
    assert warning.startswith("! the demo's Slack workflow posts to http://127.0.0.1:6067/")


def test_dev_checks_every_port_it_listens_on(listening: int) -> None:
    settings = dev_settings(Settings(_env_file=None, web_port=listening))  # type: ignore[call-arg]
    ports = dev_ports(settings, ("127.0.0.1", listening), dev_peer_ports(settings))
    assert [(p.port, p.setting) for p in ports] == [
        (9092, "COEFLOW_DEV_BROKER_PORT"),
        (listening, "COEFLOW_WEB_PORT"),
        (2525, "COEFLOW_DEV_SMTP_PORT"),
        (6067, "COEFLOW_DEV_SINK_PORT"),
    ]
    free = [p for p in ports if p.port != listening]
    assert taken_ports([p for p in ports if p.port == listening]) == [ports[1]]
    assert ports[1].taken() == (
        f"✗ 127.0.0.1:{listening} (the admin API) is already in use: stop what holds it or "
        "set COEFLOW_WEB_PORT to another port"
    )
    assert "COEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:9092" in free[0].taken()
    on_kafka = settings.model_copy(update={"kafka_bootstrap": "kafka:9092"})
    assert [p.setting for p in dev_ports(on_kafka, None, (None, None))] == []
    no_api = settings.model_copy(update={"roles": frozenset({"processor"})})
    [_, web, *_] = dev_ports(no_api, ("127.0.0.1", listening), (None, None))
    assert web.what == "the worker's /health"  # it listens there, for /health alone


def test_a_port_is_free_to_listen_on_unless_something_listens_there(listening: int) -> None:
    assert not can_listen("127.0.0.1", listening)
    assert not can_listen("0.0.0.0", listening)  # all addresses include this one
    assert can_listen("127.0.0.1", free_port())


async def test_dev_peers_report_a_taken_port_and_stop_cleanly(listening: int) -> None:
    sink_port = free_port()
    outbox = DevPort("the local SMTP outbox", "127.0.0.1", listening, "COEFLOW_DEV_SMTP_PORT")
    sink = DevPort("the local HTTP sink", "127.0.0.1", sink_port, "COEFLOW_DEV_SINK_PORT")
    peers = DevPeers(outbox=outbox, sink=sink)
    with pytest.raises(PortTaken, match=f"127.0.0.1:{listening} .*COEFLOW_DEV_SMTP_PORT"):
        await peers.start()
    await peers.stop()  # no AttributeError for what never started
    assert can_listen("127.0.0.1", sink_port)
    sink_taken = DevPeers(outbox=None, sink=outbox)
    with pytest.raises(PortTaken):
        await sink_taken.start()
    await sink_taken.stop()


async def test_dev_peers_listen_and_stop() -> None:
    smtp_port, sink_port = distinct_free_ports(2)
    peers = DevPeers(
        outbox=DevPort("outbox", "127.0.0.1", smtp_port, "X"),
        sink=DevPort("sink", "127.0.0.1", sink_port, "Y"),
    )
    await peers.start()
    assert port_in_use("127.0.0.1", smtp_port) and port_in_use("127.0.0.1", sink_port)
    await peers.stop()
    assert can_listen("127.0.0.1", smtp_port) and can_listen("127.0.0.1", sink_port)


def test_output_to_a_pipe_nobody_reads_is_dropped_not_raised() -> None:
    read_end, write_end = os.pipe()
    stream = io.TextIOWrapper(io.FileIO(write_end, "w"), encoding="utf-8")
    sturdy = SturdyStream(stream)
    sturdy.write("read\n")
    sturdy.flush()
    assert os.read(read_end, 100) == b"read\n"
    os.close(read_end)
    assert sturdy.write("-INT- -INT-\n") == len("-INT- -INT-\n")
    sturdy.flush()  # BrokenPipeError inside: the descriptor now writes to /dev/null
    assert os.path.samestat(os.fstat(write_end), os.stat(os.devnull))
    print("after", file=sturdy)
    stream.close()


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
@pytest.mark.skipif(port_in_use("127.0.0.1", 6067), reason="127.0.0.1:6067 is taken (make run?)")
def test_coeflow_dev_demo_runs_the_product_and_stops_cleanly(tmp_path: Path) -> None:
    env = dev_env(tmp_path, COEFLOW_DEV_SINK_PORT="6067")  # where the demo's Slack posts go
    broker_port = int(env["COEFLOW_DEV_BROKER_PORT"])
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
        assert f"embedded Kafka-API broker (Tansu) on 127.0.0.1:{broker_port}" in content
        assert "Authorization: Bearer " in content
        content = wait_for_line(log, "run wf-welcome v1 on lead", process, within=60)
        assert "(record_created): " in content
        wait_for_line(log, "outbox: email to ", process, within=30)
        content = wait_for_line(log, "] progress: ", process, within=30)
        assert "actions: " in content
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    assert not port_in_use("127.0.0.1", broker_port), "the embedded broker outlived coeflow dev"
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
    env = dev_env(tmp_path, COEFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
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


@pytest.mark.parametrize("setting", PORT_SETTINGS)
def test_coeflow_dev_says_in_one_line_that_a_port_is_taken(
    tmp_path: Path, listening: int, setting: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "coeflow", "dev", "--demo"],
        cwd=tmp_path,
        env=dev_env(tmp_path, **{setting: str(listening)}),
        capture_output=True,
        timeout=30,
    )
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1, lines  # and no "✓" line before it
    assert lines[0].startswith(f"✗ 127.0.0.1:{listening} (")
    assert f"is already in use: stop what holds it or set {setting} to another port" in lines[0]
    assert b"Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "data" / "broker.log").exists()  # no broker was started


def _processes_with(text: str) -> list[int]:
    """Process ids whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.integration
def test_ctrl_c_stops_coeflow_dev_when_nobody_reads_its_output(tmp_path: Path) -> None:
    """`make run 2>&1 | tee log`, then Ctrl-C: tee dies with the signal, and the worker's first
    reaction to it is a write to the pipe nobody reads any more."""
    env = dev_env(tmp_path)
    broker = f"tcp://127.0.0.1:{env['COEFLOW_DEV_BROKER_PORT']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "coeflow", "dev"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[bytes] = []
    ready = threading.Event()

    def read_until_ready() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if b"] ready: " in line:
                ready.set()
                return

    reader = threading.Thread(target=read_until_ready, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), b"".join(seen)[-3000:].decode(errors="replace")
        reader.join(5)
        assert _processes_with(broker), "no embedded broker to watch"
        process.stdout.close()  # the reader is gone
        process.send_signal(signal.SIGINT)
        returncode = process.wait(20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert returncode == 0
    deadline = time.monotonic() + 5
    while _processes_with(broker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_with(broker), "the embedded broker outlived coeflow dev"


_DEV_WITHOUT_ITS_CHECK = """
import sys
import coeflow.tools.cli
coeflow.tools.cli.taken_ports = lambda ports: []  # as if the port was taken after dev checked it
sys.argv = ["coeflow", "dev"]
coeflow.tools.cli.main()
"""


@pytest.mark.integration
@pytest.mark.parametrize(
    ("setting", "what"),
    [("COEFLOW_WEB_PORT", "the admin API"), ("COEFLOW_DEV_SMTP_PORT", "the local SMTP outbox")],
)
def test_a_port_taken_at_the_last_moment_is_one_line_too(
    tmp_path: Path, listening: int, setting: str, what: str
) -> None:
    env = dev_env(tmp_path, **{setting: str(listening)})
    broker = f"tcp://127.0.0.1:{env['COEFLOW_DEV_BROKER_PORT']}"
    result = subprocess.run(
        [sys.executable, "-c", _DEV_WITHOUT_ITS_CHECK],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output[-3000:]
    taken = [line for line in output.splitlines() if line.startswith("✗")]
    assert taken == [
        f"✗ 127.0.0.1:{listening} ({what}) is already in use: stop what holds it or set "
        f"{setting} to another port"
    ]
    assert "Traceback" not in output and "AttributeError" not in output
    assert not _processes_with(broker), "the embedded broker outlived coeflow dev"


def test_only_the_demo_opens_loopback_to_outbound_calls() -> None:
    """The allowlist opens every port of 127.0.0.1 (the admin API's too): for the demo's Slack
    posts to the sink, and nothing else."""
    plain = Settings(_env_file=None)  # type: ignore[call-arg]
    assert dev_settings(plain).outbound_allowlist == ()
    assert dev_settings(plain, demo=True).outbound_allowlist == ("127.0.0.1",)

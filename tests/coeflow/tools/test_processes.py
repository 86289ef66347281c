from __future__ import annotations

import pytest

from coeflow.settings import Settings
from coeflow.tools.processes import processes_asked, run_processes

SETTINGS = Settings(_env_file=None, kafka_bootstrap="unused:0")


@pytest.mark.parametrize(
    ("argv", "count", "rest"),
    [
        (["-l", "info"], 1, ["-l", "info"]),
        (["--processes", "3", "-l", "info"], 3, ["-l", "info"]),
        (["-l", "info", "--processes=2"], 2, ["-l", "info"]),
    ],
)
def test_processes_are_asked_by_option_and_the_option_is_taken_out(
    argv: list[str], count: int, rest: list[str]
) -> None:
    assert processes_asked(argv, SETTINGS) == count
    assert argv == rest  # what Faust parses next


def test_the_setting_says_how_many_when_the_option_does_not() -> None:
    settings = SETTINGS.model_copy(update={"processes": 4})
    assert processes_asked(["-l", "info"], settings) == 4
    assert processes_asked(["--processes", "1"], settings) == 1


@pytest.mark.parametrize("value", ["0", "65", "two", "-1", ""])
def test_a_count_that_is_not_1_to_64_stops_with_the_reason(value: str) -> None:
    with pytest.raises(SystemExit, match="whole number from 1 to 64"):
        processes_asked(["--processes", value], SETTINGS)


def test_a_web_port_option_is_refused_with_processes_since_each_takes_its_own() -> None:
    with pytest.raises(SystemExit, match="COEFLOW_WEB_PORT"):
        run_processes(2, ["--web-port", "7000"], SETTINGS)

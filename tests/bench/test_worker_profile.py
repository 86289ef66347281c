"""A worker's profile folded into stages, and py-spy recording a real process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bench.worker_profile import THE_REST, Sampling, py_spy, shares, stage_of, us_by_stage

_LOOP = "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
_CORE = [
    _LOOP,
    "BatchProcessor._handle (processor/batches.py:170)",
    "ChangeProcessor.process (processor/changes.py:42)",
    "process_change (processor/core/pipeline.py:106)",
]


def test_a_sample_is_the_stage_of_its_innermost_named_frame() -> None:
    assert stage_of([*_CORE, "decide (processor/core/decide.py:139)", "same (x.py:1)"]) == (
        "decide"
    )
    assert stage_of(_CORE) == "core's other"  # process_change's own work
    assert stage_of([_LOOP, "EpollSelector.select (selectors.py:468)"]) == THE_REST


def test_shares_count_each_stack_by_its_samples_and_skip_what_is_not_a_stack() -> None:
    raw = "\n".join(
        [
            ";".join([*_CORE, "encode_runs (processor/core/pipeline.py:313)"]) + " 3",
            ";".join(_CORE) + " 1",
            "not a stack",
            "",
        ]
    )
    stage_shares, samples = shares(raw)
    assert samples == 4
    assert stage_shares["encode"] == 0.75 and stage_shares["core's other"] == 0.25
    assert sum(stage_shares.values()) == pytest.approx(1.0)
    assert us_by_stage(stage_shares, 20.0)["encode"] == 15.0
    assert us_by_stage({"decode": 1 / 3}, 10.0) == {"decode": 3.3}  # to a tenth of a µs
    assert shares("") == ({}, 0)


_BUSY = """
import time


def decide():  # named as the core's function is
    end = time.monotonic() + 0.01
    while time.monotonic() < end:
        sum(range(1000))


class ChangeProcessor:  # a method: py-spy names it by its qualified name
    def process(self):
        end = time.monotonic() + 0.01
        while time.monotonic() < end:
            sum(range(1000))


print("ready", flush=True)
for _ in range(3000):
    decide()
    ChangeProcessor().process()
"""


def _skip_without_permission(sampling: Sampling) -> None:
    if sampling.error and "ermission" in sampling.error:  # not root, ptrace_scope above 0
        pytest.skip(f"this user may not attach to another process: {sampling.error}")


@pytest.mark.skipif(py_spy() is None, reason="py-spy is a dev dependency: make test installs it")
async def test_py_spy_records_a_running_process_until_stopped(tmp_path: Path) -> None:
    busy = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _BUSY, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert busy.stdout is not None and (await busy.stdout.readline()).strip() == b"ready"
        sampling = Sampling(tmp_path / "profile.txt", rate=200)
        await sampling.start(busy.pid)
        _skip_without_permission(sampling)
        await asyncio.sleep(1.5)
        await sampling.stop()
    finally:
        busy.kill()
        await busy.wait()
    assert sampling.error is None
    stage_shares, samples = shares(sampling.raw)
    assert samples > 50
    assert stage_shares["decide"] > 0.3  # a function, as the core's
    assert stage_shares["core's other"] > 0.3  # a method, as ChangeProcessor.process


@pytest.mark.skipif(py_spy() is None, reason="py-spy is a dev dependency: make test installs it")
async def test_a_process_that_is_gone_gives_py_spys_reason_and_no_profile(tmp_path: Path) -> None:
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    sampling = Sampling(tmp_path / "profile.txt", rate=100)
    await sampling.start(gone.pid)  # returns once py-spy has given up
    assert sampling.error is not None and "could not sample" in sampling.error
    assert "Error" in sampling.error  # py-spy's own line, not a backtrace's last
    await sampling.stop()
    assert sampling.raw == ""


async def test_without_py_spy_there_is_a_reason_and_stopping_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bench.worker_profile.py_spy", lambda: None)
    sampling = Sampling(tmp_path / "profile.txt", rate=100)
    await sampling.start(1)
    await sampling.stop()
    assert sampling.raw == "" and sampling.error is not None and "not installed" in sampling.error

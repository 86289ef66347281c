from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from coeflow.settings import Settings
from tests.factories import make_event, make_workflow
from topics.events import ChangeEvent
from topics.workflows import Workflow


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as Python has it, however the suite was started: a shell without job control
    starts a command run with ``&`` with SIGINT ignored, Python then leaves it ignored, and so
    would every process a test starts. The tests of Ctrl-C would wait for one forever."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def event_factory() -> Callable[..., ChangeEvent]:
    return make_event


@pytest.fixture
def workflow_factory() -> Callable[..., Workflow]:
    return make_workflow


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1")  # type: ignore[call-arg]

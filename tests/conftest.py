from __future__ import annotations

from collections.abc import Callable

import pytest

from coeflow.settings import Settings
from tests.factories import make_event, make_workflow
from topics.events import ChangeEvent
from topics.workflows import Workflow


@pytest.fixture
def event_factory() -> Callable[..., ChangeEvent]:
    return make_event


@pytest.fixture
def workflow_factory() -> Callable[..., Workflow]:
    return make_workflow


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1")  # type: ignore[call-arg]

from __future__ import annotations

from typing import Any

import pytest

from coeflow.errors import InvalidInput, InvalidWorkflow, NotFound
from processor.core.backtest_versions import choose_versions
from processor.core.compiler import compile_workflow
from tests.factories import make_workflow
from topics.workflows import Workflow

NOT_BACKTESTED = {"scheduled": "no record change starts it"}


def saved(*statuses: str, **overrides: Any) -> dict[int, Workflow]:
    return {
        n: make_workflow(version=n, status=status, **overrides)
        for n, status in enumerate(statuses, 1)
    }


def test_by_default_the_newest_version_against_the_newest_active_one_before_it() -> None:
    chosen = choose_versions("wf-welcome", saved("active", "active", "inactive", "draft"))
    assert (chosen.candidate_version, chosen.baseline_version) == (4, 2)
    assert chosen.candidate.workflow.version == 4 and chosen.baseline is not None
    assert chosen.baseline.workflow.version == 2


def test_a_candidate_before_any_active_version_has_no_baseline() -> None:
    chosen = choose_versions("wf-welcome", saved("draft", "active"), version=1)
    assert (chosen.candidate_version, chosen.baseline_version, chosen.baseline) == (1, None, None)


def test_the_asked_versions_and_compare_to_zero() -> None:
    versions = saved("draft", "draft", "draft")
    chosen = choose_versions("wf-welcome", versions, version=2, compare_to=3)
    assert (chosen.candidate_version, chosen.baseline_version) == (2, 3)
    none = choose_versions("wf-welcome", saved("active", "draft"), compare_to=0)
    assert (none.candidate_version, none.baseline, none.baseline_version) == (2, None, None)


def test_a_definition_is_the_candidate_against_the_newest_active_version() -> None:
    definition = compile_workflow(make_workflow(version=9, name="Edited", status="draft"))
    chosen = choose_versions(
        "wf-welcome", saved("active", "draft"), version=1, definition=definition
    )
    assert chosen.candidate is definition and chosen.candidate_version is None
    assert chosen.baseline_version == 1


def test_a_definition_of_a_workflow_that_does_not_exist_yet_has_no_baseline() -> None:
    definition = compile_workflow(make_workflow(id="wf-new"))
    chosen = choose_versions("wf-new", {}, definition=definition)
    assert chosen.candidate is definition and chosen.baseline is None


def test_missing_workflows_and_versions_are_not_found() -> None:
    with pytest.raises(NotFound, match="no workflow 'wf-x'"):
        choose_versions("wf-x", {})
    with pytest.raises(NotFound, match="has no version 7"):
        choose_versions("wf-welcome", saved("active"), version=7)
    with pytest.raises(NotFound, match="has no version 5"):
        choose_versions("wf-welcome", saved("active"), compare_to=5)


def test_a_saved_version_that_no_longer_compiles_is_refused_with_its_problems() -> None:
    broken = make_workflow(version=2).model_copy(
        update={"actions": [make_workflow().actions[0].model_copy(update={"type": "gone"})]}
    )
    versions = {**saved("active"), 2: broken}
    with pytest.raises(InvalidInput, match="version 2 does not compile") as refused:
        choose_versions("wf-welcome", versions)
    assert refused.value.problems and refused.value.problems[0].loc.startswith("version.")


def test_a_trigger_that_is_not_backtested_is_refused_with_the_reason() -> None:
    tick = {"type": "scheduled", "cron": "0 9 * * *"}
    versions = {1: make_workflow(version=1), 2: make_workflow(version=2, trigger=tick)}
    with pytest.raises(InvalidWorkflow, match="no record change starts it") as refused:
        choose_versions("wf-welcome", versions, not_backtested=NOT_BACKTESTED)
    assert refused.value.problems[0].loc == "version"
    with pytest.raises(InvalidWorkflow, match="not backtested: no record change starts it"):
        choose_versions(
            "wf-welcome", versions, version=1, compare_to=2, not_backtested=NOT_BACKTESTED
        )
    assert choose_versions("wf-welcome", versions, version=1, compare_to=0).baseline is None

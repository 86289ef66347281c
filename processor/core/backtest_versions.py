"""Which two versions of a workflow a backtest compares: the candidate (the version tried) and
the baseline (the version it is compared with), from what the request asks and the versions
saved so far. Pure: the API hands in the saved versions and an unsaved definition already
validated.

The defaults answer the question an admin asks before activating an edit: "what would my
newest version do, next to what ran?". So the candidate is the newest saved version (a draft
too), and the baseline the newest version saved ``active`` before it; ``compare_to=0`` asks for
no baseline at all (a workflow that does nothing, so every run of the candidate is a change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from coeflow.errors import InvalidInput, InvalidWorkflow, NotFound, Problem
from processor.core.compiler import CompiledWorkflow, compile_workflow
from topics.workflows import Workflow


@dataclass(frozen=True, slots=True)
class ChosenVersions:
    candidate: CompiledWorkflow
    candidate_version: int | None
    """``None``: an unsaved definition."""
    baseline: CompiledWorkflow | None
    """``None``: nothing to compare with (no active version before the candidate, or
    ``compare_to=0``)."""
    baseline_version: int | None


def choose_versions(
    workflow_id: str,
    saved: Mapping[int, Workflow],
    *,
    version: int | None = None,
    compare_to: int | None = None,
    definition: CompiledWorkflow | None = None,
    not_backtested: Mapping[str, str] | None = None,
) -> ChosenVersions:
    """The candidate and the baseline of a backtest of ``workflow_id``.

    ``saved``: its saved versions by number (empty for a workflow that does not exist yet,
    which only a ``definition`` may backtest). ``definition``: an unsaved workflow, compiled,
    tried instead of a saved version (``version`` is then ignored). ``not_backtested``: trigger
    kind → why a workflow with it cannot be backtested.

    ``NotFound`` for a version that does not exist; ``InvalidWorkflow`` for a saved version that
    no longer compiles (with its problems) or a trigger that is not backtested."""
    if definition is not None:
        candidate, candidate_version = definition, None
    else:
        if not saved:
            raise NotFound(f"no workflow {workflow_id!r}")
        number = version if version is not None else max(saved)
        candidate, candidate_version = _compiled(workflow_id, saved, number, "version"), number
    baseline: CompiledWorkflow | None = None
    baseline_version: int | None = None
    if compare_to is None:
        before = [
            n
            for n, w in saved.items()
            if w.status == "active" and (candidate_version is None or n < candidate_version)
        ]
        if before:
            baseline_version = max(before)
            baseline = _compiled(workflow_id, saved, baseline_version, "compare_to")
    elif compare_to != 0:
        baseline_version = compare_to
        baseline = _compiled(workflow_id, saved, compare_to, "compare_to")
    for loc, side in (("version", candidate), ("compare_to", baseline)):
        kind = side.kind.name if side is not None else ""
        reason = (not_backtested or {}).get(kind)
        if reason is not None:
            raise InvalidWorkflow([Problem(loc, f"not backtested: {reason}")])
    return ChosenVersions(candidate, candidate_version, baseline, baseline_version)


def _compiled(
    workflow_id: str, saved: Mapping[int, Workflow], number: int, loc: str
) -> CompiledWorkflow:
    workflow = saved.get(number)
    if workflow is None:
        raise NotFound(f"workflow {workflow_id!r} has no version {number}")
    try:
        return compile_workflow(workflow)
    except InvalidWorkflow as exc:  # saved when it compiled; the registries changed since
        raise InvalidInput(
            [Problem(f"{loc}.{p.loc}" if p.loc else loc, p.msg) for p in exc.problems],
            f"version {number} does not compile",
        ) from None

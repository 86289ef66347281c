"""Which parameters of which action differ between two outcomes of one event: what a backtest
means by ``params`` (the same actions, other rendered parameters), said so a person need not
compare two blocks of JSON by eye. The Backtest panel highlights these keys and the CSV lists
them (``parameters_that_differ``); both read it from here, so they say the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topics.backtests import ReplayedOutcome


@dataclass(frozen=True, slots=True)
class ParamDifference:
    """One action the two outcomes both issued, at the same step and of the same type, whose
    rendered parameters differ at ``keys`` (a key one has and the other has not counts)."""

    position: int
    """Its place in the run's actions, from 0 (the panel says "Action 1" for 0)."""
    step: int
    type: str
    keys: tuple[str, ...]
    """The differing top-level parameters, sorted."""


def differing_keys(mine: dict[str, Any], theirs: dict[str, Any]) -> tuple[str, ...]:
    """The keys whose values differ, or that only one of the two has, sorted."""
    return tuple(
        sorted(
            key
            for key in mine.keys() | theirs.keys()
            if key not in mine or key not in theirs or mine[key] != theirs[key]
        )
    )


def param_differences(
    candidate: ReplayedOutcome | None, baseline: ReplayedOutcome | None
) -> list[ParamDifference]:
    """Each action of both outcomes, paired by position where step and type agree, whose
    parameters differ. Actions that do not pair up (another step or type, one more in one
    run) are the ``actions`` difference, not this one, and are left out."""
    if candidate is None or baseline is None:
        return []
    found = []
    for position, (mine, theirs) in enumerate(
        zip(candidate.actions, baseline.actions, strict=False)
    ):
        if mine.step != theirs.step or mine.type != theirs.type:
            continue
        keys = differing_keys(mine.params, theirs.params)
        if keys:
            found.append(ParamDifference(position, mine.step, mine.type, keys))
    return found

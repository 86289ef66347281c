from __future__ import annotations

from typing import Any

from processor.core.backtest_diff import ParamDifference, differing_keys, param_differences
from topics.backtests import ActionOutline, ReplayedOutcome


def issued(*actions: tuple[int, str, dict[str, Any]]) -> ReplayedOutcome:
    return ReplayedOutcome(
        status="actions_issued",
        actions=[ActionOutline(step=s, type=t, params=p) for s, t, p in actions],
    )


EMAIL = {"to": "a@example.com", "subject": "Hi Ada", "body": "Welcome"}


def test_the_keys_of_each_action_whose_rendered_parameters_differ() -> None:
    candidate = issued(
        (0, "send_email", {**EMAIL, "subject": "Hello Ada"}), (1, "create_task", {"title": "Call"})
    )
    baseline = issued((0, "send_email", EMAIL), (1, "create_task", {"title": "Call"}))
    assert param_differences(candidate, baseline) == [
        ParamDifference(position=0, step=0, type="send_email", keys=("subject",))
    ]


def test_a_key_only_one_side_has_differs_and_keys_are_sorted() -> None:
    mine = {**EMAIL, "cc": ["b@example.com"], "body": "Other"}
    assert differing_keys(mine, EMAIL) == ("body", "cc")
    assert differing_keys(EMAIL, mine) == ("body", "cc")
    assert differing_keys(EMAIL, dict(EMAIL)) == ()
    assert differing_keys({"n": {"a": 1}}, {"n": {"a": 2}}) == ("n",)  # a nested value: its key


def test_actions_that_do_not_pair_up_and_missing_runs_are_not_parameter_differences() -> None:
    email = (0, "send_email", EMAIL)
    other = (0, "send_sms", {"to": "+15550100"})
    assert param_differences(issued(email), issued(other)) == []
    assert param_differences(None, issued(email)) == []
    assert param_differences(issued(email), None) == []
    assert param_differences(issued(email), issued(email)) == []
    # one run has an action more: the ones that pair up are still compared
    longer = issued((0, "send_email", {**EMAIL, "to": "z@example.com"}), (1, "send_sms", {}))
    assert param_differences(longer, issued(email)) == [
        ParamDifference(position=0, step=0, type="send_email", keys=("to",))
    ]
    assert param_differences(longer, issued(email))[0].position == 0

from __future__ import annotations

from processor.core.paths import MISSING, compile_path, lookup, plain

RECORD = {"name": "Ada", "owner": {"name": "Maria", "team": None}, "tags": ["vip", "eu"]}


def test_dotted_paths_reach_nested_fields_and_list_items() -> None:
    assert lookup(RECORD, compile_path("name")) == "Ada"
    assert lookup(RECORD, compile_path("owner.name")) == "Maria"
    assert lookup(RECORD, compile_path("tags.1")) == "eu"


def test_absent_steps_are_missing_and_null_is_a_value() -> None:
    assert lookup(RECORD, compile_path("email")) is MISSING
    assert lookup(RECORD, compile_path("owner.team")) is None
    assert lookup(RECORD, compile_path("owner.team.lead")) is MISSING
    assert lookup(RECORD, compile_path("tags.9")) is MISSING
    assert lookup(RECORD, compile_path("name.first")) is MISSING
    assert lookup(None, compile_path("name")) is MISSING


def test_missing_is_shown_as_null() -> None:
    assert plain(MISSING) is None
    assert plain(0) == 0

"""The vocabulary the reference and the API's catalog are written from: every registry entry,
its schema the validating model's, and each operator's ``fits`` true to its test."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actions.registry import REGISTRY as ACTIONS
from processor.core.operators import FIELD_TYPES, OPERATORS, ValueShape, field_type
from processor.core.triggers import KINDS
from processor.core.vocabulary import vocabulary

SCALARS = st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=False), st.booleans())
VALUES = st.recursive(
    SCALARS | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
EXPECTED = {
    ValueShape.NONE: st.none(),
    ValueShape.SCALAR: SCALARS,
    ValueShape.LIST: st.lists(SCALARS, max_size=3),
    ValueShape.ANY: VALUES,
}


def test_every_trigger_operator_and_action_is_named_once_in_registry_order() -> None:
    words = vocabulary()
    assert [t["type"] for t in words["triggers"]] == [k.name for k in KINDS]
    assert [o["op"] for o in words["operators"]] == [o.name for o in OPERATORS]
    assert [a["type"] for a in words["actions"]] == list(ACTIONS)
    assert words["field_types"] == list(FIELD_TYPES)


def test_parameters_are_the_validating_models_schema_without_type() -> None:
    words = vocabulary()
    lead = next(t for t in words["triggers"] if t["type"] == "lead_score_threshold")
    assert lead["parameters"]["required"] == ["threshold"]
    assert "type" not in lead["parameters"]["properties"]
    email = next(a for a in words["actions"] if a["type"] == "send_email")
    schema = ACTIONS["send_email"].params.model_json_schema(by_alias=True)
    assert email["parameters"]["properties"] == schema["properties"]


def test_operators_say_their_value_kind_and_the_field_types_they_fit() -> None:
    ops = {o["op"]: o for o in vocabulary()["operators"]}
    assert ops["in"]["value_kind"] == "list" and ops["in"]["fits"] == [
        "string",
        "number",
        "boolean",
    ]
    assert ops["gt"]["fits"] == ["string", "number"]
    assert ops["starts_with"]["fits"] == ["string"]
    assert ops["contains"]["fits"] == ["string", "list"]
    assert ops["is_empty"]["value_kind"] == "none" and ops["is_empty"]["fits"] == list(FIELD_TYPES)
    assert ops["changed_to"]["compares_before"] is True


@given(data=st.data(), actual=VALUES)
def test_an_operator_never_passes_on_a_field_type_it_does_not_fit(
    data: st.DataObject, actual: Any
) -> None:
    kind = field_type(actual)
    for op in OPERATORS:
        if kind is None or kind in op.fits or op.uses_before:
            continue
        expected = data.draw(EXPECTED[op.value])
        assert op.test(actual, actual, expected) is False, (op.name, actual, expected)

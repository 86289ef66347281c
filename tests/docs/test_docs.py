"""The documents in the repository say what the code and the contract say."""

from __future__ import annotations

from pathlib import Path

import pytest

from coeflow.tools.reference import markdown
from processor.core.vocabulary import vocabulary

ROOT = Path(__file__).parents[2]
SHARED_SPEC = ROOT.parent / "shared" / "product" / "spec.md"


def test_the_reference_is_the_one_the_models_make() -> None:
    checked_in = (ROOT / "docs" / "reference.md").read_text()
    assert checked_in == markdown(), "docs/reference.md is stale: run `make reference`"


def test_the_reference_names_every_trigger_operator_and_action() -> None:
    text = markdown()
    words = vocabulary()
    for name in [t["type"] for t in words["triggers"]] + [a["type"] for a in words["actions"]]:
        assert f"### `{name}`" in text
    assert all(f"| `{op['op']}` |" in text for op in words["operators"])
    stalled = next(t for t in words["triggers"] if t["type"] == "record_stalled")
    assert stalled["parameters"]["required"] == ["record_type", "for"]


@pytest.mark.skipif(not SHARED_SPEC.exists(), reason="no shared/ beside this checkout")
def test_the_contract_in_the_repository_is_the_shared_one() -> None:
    copy = (ROOT / "docs" / "contract.md").read_text().split("\n", 2)[2]
    assert copy == SHARED_SPEC.read_text(), "docs/contract.md differs from shared/product/spec.md"

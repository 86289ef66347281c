"""The documents in the repository say what the code and the contract say."""

from __future__ import annotations

import re
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


DOCUMENTS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCED = re.compile(r"```.*?```", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#{1,6} (.+)$", FENCED.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(page: Path) -> None:
    broken = []
    for target in LINK.findall(CODE.sub("", page.read_text())):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_the_readme_leads_with_the_two_commands_and_stays_short() -> None:
    readme = (ROOT / "README.md").read_text()
    first_section = readme.split("\n## ", 1)[0]
    assert "make run" in first_section and "make test" in first_section
    assert "in memory" in first_section  # a restart of `make run` loses everything: said first
    assert len(readme.encode()) < 12_000, (
        "the README is a newcomer's first page: move detail to docs/"
    )

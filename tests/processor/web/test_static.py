"""The web app's static files and templates: the vendored htmx is the pinned release with
its licence, and no template has what the Content-Security-Policy refuses (inline scripts,
inline styles, event-handler attributes, htmx's eval-based ``hx-on``)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from processor.web.pages import CONTENT_SECURITY_POLICY, STATIC, TEMPLATES

HTMX = STATIC / "htmx-2.0.4.min.js"
HTMX_SHA256 = "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447"

REFUSED = re.compile(
    r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+\s*=|\shx-on|javascript:", re.IGNORECASE
)


def test_the_vendored_htmx_is_the_pinned_release_with_its_licence() -> None:
    assert hashlib.sha256(HTMX.read_bytes()).hexdigest() == HTMX_SHA256
    assert 'version:"2.0.4"' in HTMX.read_text()
    assert "Zero-Clause BSD" in (STATIC / "htmx-LICENSE.txt").read_text()
    assert HTMX.name in (TEMPLATES / "base.html").read_text()


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_no_template_has_what_the_policy_refuses(template: Path) -> None:
    found = [m.group(0) for m in REFUSED.finditer(template.read_text())]
    assert found == [], f"{template.name}: {found}"


def test_the_policy_allows_no_inline_code_and_no_other_origin() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY

from __future__ import annotations

import hashlib
import hmac

from coeflow.signing import signature_header, verify


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    header = signature_header("s3cret", 1764097201, b'{"a":1}')
    expected = hmac.new(b"s3cret", b'1764097201.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1764097201,v1={expected}"


def test_a_receiver_verifies_it_and_notices_any_change() -> None:
    header = signature_header("s3cret", 1764097201, b"body")
    assert verify("s3cret", header, b"body")
    assert not verify("s3cret", header, b"body!")
    assert not verify("other", header, b"body")
    assert not verify("s3cret", header.replace("t=1764097201", "t=1764097202"), b"body")
    assert not verify("s3cret", "v1=abc", b"body")

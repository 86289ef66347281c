"""The inbound signature header is the caller's text: anything that is not a well-formed
``t=<digits>,v1=<hex>`` is no signature (``None``), never an exception."""

from __future__ import annotations

import pytest

from coeflow.signing import MAX_TIMESTAMP_DIGITS, parse_header, signature_header, verify


def test_a_well_formed_header_gives_its_time_and_every_signature() -> None:
    assert parse_header("t=1764097201,v1=ab12,v1=CD34") == (1764097201, ["ab12", "CD34"])
    assert parse_header(" t=1764097201 , v1=ab12 , v0=zz, x=1") == (1764097201, ["ab12"])


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=1764097201",
        "v1=ab12",
        "t=²,v1=ab12",  # str.isdigit() says yes; int() says no
        "t=١٢٣,v1=ab12",  # Arabic-Indic digits: int() would take them, we do not
        "t=" + "9" * 5000 + ",v1=ab12",  # past int()'s 4300-digit limit
        "t=" + "9" * (MAX_TIMESTAMP_DIGITS + 1) + ",v1=ab12",
        "t=-1,v1=ab12",
        "t=+1,v1=ab12",
        "t=1 2,v1=ab12",
        "t=1764097201,v1=é",  # hmac.compare_digest raises on non-ASCII str
        "t=1764097201,v1=xyz",
        "t=1764097201,v1=" + "a" * 129,
        "t=1764097201,v1=",
    ],
)
def test_anything_else_is_no_signature(header: str) -> None:
    assert parse_header(header) is None
    assert verify("s3cret", header, b"body") is False


def test_a_time_past_year_9999_parses_and_is_left_to_the_skew_check() -> None:
    assert parse_header("t=253402300800,v1=00") == (253402300800, ["00"])


def test_verify_still_accepts_a_real_signature_next_to_junk() -> None:
    header = signature_header("s3cret", 1764097201, b"body") + ",v1=é,v1=00"
    assert verify("s3cret", header, b"body")

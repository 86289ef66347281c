"""The bench's command line: what it refuses before it starts a broker."""

from __future__ import annotations

import argparse

import pytest

from bench.run import _not_negative


def test_a_size_may_be_zero_and_not_negative() -> None:
    assert _not_negative("0") == 0 and _not_negative("100000") == 100_000
    with pytest.raises(argparse.ArgumentTypeError, match="-1 is negative"):
        _not_negative("-1")
    with pytest.raises(ValueError):
        _not_negative("many")

from __future__ import annotations

from executors.policy import retry_after_seconds
from tests.factories import NOW


def test_a_retry_after_of_non_ascii_digits_is_ignored_not_a_crash() -> None:
    assert retry_after_seconds("²", NOW) is None  # str.isdigit() says yes; float() says no
    assert retry_after_seconds("١٢", NOW) is None
    assert retry_after_seconds(" 12 ", NOW) == 12.0

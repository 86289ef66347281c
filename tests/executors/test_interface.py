from __future__ import annotations

import pytest

from coeflow.errors import InvalidCommand
from coeflow.redact import redacted
from executors.interface import decode_command
from tests.factories import make_command
from topics import codec


def test_redacted_cuts_addresses_and_numbers_but_keeps_the_rest() -> None:
    text = "550 5.1.1 <ada.lovelace@example.com>: unknown; SMS to +49 151 1234 5678 at 2026-11-25"
    assert redacted(text) == "550 5.1.1 <ad***@example.com>: unknown; SMS to +49***78 at 2026-11-25"


def test_a_command_decodes_only_from_its_own_topic() -> None:
    command = make_command("send_sms", {"to": "+4915112345678", "body": "hi"})
    assert decode_command(codec.dumps(command), "send_sms") == command
    with pytest.raises(InvalidCommand, match="a 'send_sms' command on the 'send_email' topic"):
        decode_command(codec.dumps(command), "send_email")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"{not json", "not valid UTF-8 JSON"),
        (b'{"action_id": "a"}', "not a valid ActionCommand: run_id: Field required"),
    ],
)
def test_bad_commands_are_refused_with_the_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidCommand, match=reason):
        decode_command(value, "send_sms")

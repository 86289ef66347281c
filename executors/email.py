"""Send Email over SMTP (aiosmtplib), with a Message-ID derived from the action id."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from pydantic import validate_email

from coeflow.errors import PermanentEffectError, TransientEffectError
from executors.interface import ExecutorContext
from topics.commands import ActionCommand


def message_id(action_id: str, sender: str) -> str:
    """The same action always gets the same Message-ID, so a repeat is recognisable to mail
    servers and clients that deduplicate on it."""
    domain = sender.rpartition("@")[2] or "coeflow.invalid"
    return f"<{action_id}@{domain}>"


def address(value: str, name: str) -> str:
    """An address checked in full, normalised: the processor checks a rendered one for its
    shape only (``actions/params.py``). The reason names the parameter, not the address."""
    try:
        return validate_email(value)[1]
    except Exception as exc:
        reason = str(exc).replace(value, "…")
        raise PermanentEffectError(f"{name} is not a valid email address: {reason}") from None


def build_message(command: ActionCommand, sender: str) -> EmailMessage:
    params = command.params
    message = EmailMessage()
    message["From"] = sender
    message["To"] = address(params["to"], "to")
    if params.get("cc"):
        message["Cc"] = ", ".join(address(cc, "cc") for cc in params["cc"])
    if params.get("reply_to"):
        message["Reply-To"] = address(params["reply_to"], "reply_to")
    message["Subject"] = params["subject"]
    message["Message-ID"] = message_id(command.action_id, sender)
    message["Date"] = formatdate(command.issued_at.timestamp(), usegmt=True)
    message["X-Coeflow-Run-Id"] = command.run_id
    message.set_content(params["body"])
    return message


class EmailExecutor:
    action_type = "send_email"

    def __init__(self, context: ExecutorContext) -> None:
        self.settings = context.settings

    async def perform(self, command: ActionCommand) -> str:
        settings = self.settings
        if settings.smtp_host is None:
            raise PermanentEffectError("no SMTP server is configured (COEFLOW_SMTP_HOST)")
        message = build_message(command, settings.smtp_from)
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_user,
                password=password,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                timeout=settings.action_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({error.code for error in exc.recipients})
            if all(code >= 500 for code in codes):
                reason = f"the SMTP server refused the recipients {codes}"
                raise PermanentEffectError(reason) from None
            raise TransientEffectError(f"the SMTP server deferred the recipients {codes}") from None
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"the SMTP server answered {exc.code} {exc.message}"
            if exc.code >= 500:
                raise PermanentEffectError(reason) from None
            raise TransientEffectError(reason) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientEffectError(
                f"cannot reach the SMTP server: {type(exc).__name__}"
            ) from None
        return f"accepted by {settings.smtp_host} as {message['Message-ID']}"

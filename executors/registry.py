"""Action type → the executor that performs it. Types not listed here (the record mutations)
are performed by the CRM, which consumes their topics."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from executors.email import EmailExecutor
from executors.interface import Executor, ExecutorContext
from executors.slack import SlackExecutor
from executors.sms import SmsExecutor
from executors.webhook import WebhookExecutor

EXECUTORS: Mapping[str, Callable[[ExecutorContext], Executor]] = {
    executor.action_type: executor
    for executor in (EmailExecutor, SmsExecutor, SlackExecutor, WebhookExecutor)
}

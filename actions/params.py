"""The interface every action type implements, and the template-aware field types they share.

One pydantic model per action type validates its parameters twice: when the workflow is saved
(merge-field strings are checked as templates, literal strings in full) and after rendering
for one event (``context={"rendered": True}``: every string is checked in full), except a
model of required plain text alone (``add_note``), whose rendered strings are checked by their
lengths without pydantic (``plain_fields``), what its validation would check of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    validate_email,
)
from pydantic_core import PydanticCustomError

from actions.templating import has_merge_fields, template_problems
from coeflow.errors import ActionRenderError, InvalidWorkflow, problems_from
from topics.catalog import action_topic

RENDERED = {"rendered": True}
"""Validation context for parameters after their merge fields were rendered."""


def templated(
    *checks: Callable[[str], str], rendered: tuple[Callable[[str], str], ...] | None = None
) -> AfterValidator:
    """A string that may hold merge fields until rendered, then must pass every check
    (``rendered``: the checks of a rendered value instead, on the hot path)."""

    def validate(value: str, info: ValidationInfo) -> str:
        is_rendered = bool(info.context and info.context.get("rendered"))
        if not is_rendered and has_merge_fields(value):
            problems = template_problems(value)
            if problems:
                raise PydanticCustomError("merge_field", "; ".join(problems))
            return value
        for check in rendered if is_rendered and rendered is not None else checks:
            value = check(value)
        return value

    # a rendered value passes unchanged: plain_fields may check it without pydantic
    unchecked = not (rendered if rendered is not None else checks)
    validate.unchecked_when_rendered = unchecked  # type: ignore[attr-defined]
    return AfterValidator(validate)


def _email(value: str) -> str:
    try:
        return validate_email(value.strip())[1]
    except Exception:
        raise PydanticCustomError(
            "email", "{value} is not an email address", {"value": repr(value)}
        ) from None


_EMAIL_SHAPE = re.compile(
    r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f.]+(?:\.[^@\s\x00-\x1f\x7f.]+)+"
)


def _email_shape(value: str) -> str:
    """A rendered address, checked for its shape only (one ``@``, a dotted domain, no spaces or
    control characters): a full check costs tens of microseconds an address, on the hot path.
    The literal addresses of a workflow are checked in full when it is saved, and the email
    executor checks every address in full before it sends (``executors/email.py``)."""
    address = value.strip()
    if not _EMAIL_SHAPE.fullmatch(address):
        raise PydanticCustomError(
            "email", "{value} is not an email address", {"value": repr(value)}
        )
    return address


_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _phone(value: str) -> str:
    number = _PHONE_SEPARATORS.sub("", value)
    if not _E164.match(number):
        raise PydanticCustomError(
            "phone",
            "{value} is not a phone number in international form (+4915112345678)",
            {"value": repr(value)},
        )
    return number


_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def _http_url(value: str) -> str:
    try:
        return str(_HTTP_URL.validate_python(value.strip()))
    except ValidationError:
        raise PydanticCustomError(
            "url", "{value} is not an http(s) URL", {"value": repr(value)}
        ) from None


def _single_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise PydanticCustomError("single_line", "must be a single line")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


def _merge_fields_in_json(value: Any) -> Any:
    problems = [
        p for text in _strings(value) if has_merge_fields(text) for p in template_problems(text)
    ]
    if problems:
        raise PydanticCustomError("merge_field", "; ".join(problems))
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


JsonWithMergeFields = Annotated[Any, AfterValidator(_merge_fields_in_json)]
"""Any JSON value; its strings may hold merge fields (a field's new value, a webhook body)."""
Text = Annotated[str, StringConstraints(max_length=50_000), templated()]
"""Free text with merge fields (a body, a note)."""
Line = Annotated[str, StringConstraints(max_length=1_000), templated(_single_line, _not_blank)]
"""One non-blank line with merge fields (a subject, a title)."""
Ref = Annotated[str, StringConstraints(max_length=256), templated(_not_blank)]
"""An id in the CRM (owner, sequence, status), possibly from a merge field."""
Email = Annotated[
    str, StringConstraints(max_length=320), templated(_email, rendered=(_email_shape,))
]
Phone = Annotated[str, StringConstraints(max_length=40), templated(_phone)]


class OutboundUrl:
    """Marks a parameter whose URL our servers call: saving checks a literal one against the
    outbound rules (``coeflow/addresses.py``); pydantic ignores the mark."""


OUTBOUND_URL = OutboundUrl()
HttpUrl = Annotated[str, StringConstraints(max_length=2_048), templated(_http_url), OUTBOUND_URL]
"""An http(s) URL our servers call (Call Webhook, Slack)."""


class ActionParams(BaseModel):
    """Parameters of one action type, as written in a workflow's ``actions[]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def outbound_urls(self) -> list[tuple[str, str]]:
        """``(parameter, URL)`` for each literal URL our servers will call (no merge field)."""
        return [
            (name, value)
            for name, info in type(self).model_fields.items()
            if OUTBOUND_URL in info.metadata
            and isinstance(value := getattr(self, name), str)
            and not has_merge_fields(value)
        ]

    def command_params(self, anchor: datetime) -> dict[str, Any]:
        """The ``params`` of the ActionCommand. ``anchor`` (the event's time) is what relative
        times such as ``due_in`` count from, so reprocessing gives the same command."""
        return self.model_dump(mode="json", exclude_none=True)


_PLAIN: dict[type[ActionParams], dict[str, tuple[int, int]] | None] = {}


def plain_fields(params: type[ActionParams]) -> dict[str, tuple[int, int]] | None:
    """``{field: (min length, max length)}`` when every field of ``params`` is required text
    that a rendered value passes by its length alone (``Text``: no check, no validator of the
    model, ``command_params`` not overridden); ``None`` for any other model. For these, the
    rendered parameters are checked here in a few loads instead of a second pydantic
    validation an event (``tests/actions/test_params.py`` shows both agree)."""
    if params in _PLAIN:
        return _PLAIN[params]
    plain: dict[str, tuple[int, int]] | None = {}
    decorators = params.__pydantic_decorators__
    if (
        params.command_params is not ActionParams.command_params
        or params.model_config.get("extra") != "forbid"
        or any(
            getattr(decorators, kind)
            for kind in (
                "validators",
                "field_validators",
                "root_validators",
                "field_serializers",
                "model_serializers",
                "model_validators",
                "computed_fields",
            )
        )
    ):
        plain = None
    for name, info in params.model_fields.items():
        if plain is None:
            break
        if info.annotation is not str or not info.is_required() or info.alias not in (None, name):
            plain = None
            break
        low, high = 0, 1 << 62
        for item in info.metadata:
            if isinstance(item, StringConstraints) and item == StringConstraints(
                min_length=item.min_length, max_length=item.max_length
            ):
                low = max(low, item.min_length or 0)
                high = min(high, item.max_length if item.max_length is not None else high)
            elif isinstance(item, AfterValidator) and getattr(
                item.func, "unchecked_when_rendered", False
            ):
                continue
            else:
                plain = None
                break
        if plain is not None:
            plain[name] = (low, high)
    _PLAIN[params] = plain
    return plain


@dataclass(frozen=True, slots=True)
class ActionType:
    name: str
    params: type[ActionParams]
    description: str

    @property
    def topic(self) -> str:
        return action_topic(self.name)

    def validate_definition(self, params: dict[str, Any], loc: str) -> ActionParams:
        """Check an ``actions[]`` entry when its workflow is saved."""
        try:
            return self.params.model_validate(params)
        except ValidationError as exc:
            raise InvalidWorkflow(problems_from(exc, loc)) from None

    def command_params(self, rendered: dict[str, Any], anchor: datetime) -> dict[str, Any]:
        """Validate rendered parameters for one event and build the command's ``params``."""
        model = self.params
        plain = _PLAIN[model] if model in _PLAIN else plain_fields(model)
        if plain is not None and type(rendered) is dict and len(rendered) == len(plain):
            for name, (low, high) in plain.items():  # a loop: no generator an event
                value = rendered.get(name)
                if type(value) is not str or not low <= len(value) <= high:
                    break
            else:
                return {name: rendered[name] for name in plain}  # as model_dump would give them
        try:
            params = self.params.model_validate(rendered, context=RENDERED)
        except ValidationError as exc:
            reasons = "; ".join(str(p) for p in problems_from(exc))
            raise ActionRenderError(reasons) from None
        return params.command_params(anchor)

"""Workflow snapshots (topic ``workflow.definitions``, compacted, keyed by workflow id).

These models fix the *shape* of a workflow. What the trigger, condition and action parameters
mean, and whether they are valid, is decided by the registries the compiler consults
(``processor.core.compiler``), so that a new trigger kind or action type needs no change here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from topics.types import FieldPath, NonEmptyStr, check_nesting

WorkflowStatus = Literal["draft", "active", "inactive"]
WorkflowId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


class TriggerSpec(BaseModel):
    """``type`` picks the trigger kind; its other parameters are the kind's to validate."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: NonEmptyStr


class ConditionLeaf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: FieldPath
    op: NonEmptyStr
    value: Any = None


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    all: list[Condition]


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    any: list[Condition]


class NotOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {AllOf: "all", AnyOf: "any", NotOf: "not", ConditionLeaf: "leaf"}.get(type(value))
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
        return "leaf"
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[ConditionLeaf, Tag("leaf")],
    Discriminator(
        _condition_kind,
        custom_error_type="invalid_condition",
        custom_error_message="a condition is an object: {all: [...]}, {any: [...]}, "
        "{not: {...}} or {field, op, value}",
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


class ActionSpec(BaseModel):
    """``type`` picks the action type; its other parameters are the type's to validate."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: NonEmptyStr

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class InboundSecret(BaseModel):
    """A secret that signs deliveries to a Webhook Received workflow. The API makes them;
    after a rotation the previous one keeps working until ``expires_at``."""

    model_config = ConfigDict(frozen=True)

    secret: Annotated[str, Field(min_length=16)]
    created_at: datetime
    expires_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


Shallow = BeforeValidator(check_nesting)
"""A part of a workflow nests at most ``MAX_NESTING`` levels of objects and arrays (32 condition
groups): the definition, its versions and its audit events embed it a few levels down, and our
JSON encoder stops at 254."""


class Workflow(BaseModel):
    """One saved version of a workflow, exactly as it is written to the definitions topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: WorkflowId
    tenant_id: NonEmptyStr
    name: Annotated[str, Field(min_length=1, max_length=200)]
    status: WorkflowStatus = "draft"
    version: int = Field(default=1, ge=1)
    trigger: Annotated[TriggerSpec, Shallow]
    conditions: Annotated[Condition | None, Shallow] = None
    actions: Annotated[list[Annotated[ActionSpec, Shallow]], Field(min_length=1, max_length=50)]
    updated_at: datetime | None = None
    inbound_secrets: list[InboundSecret] = Field(default_factory=list)
    """Set by the API for a Webhook Received trigger, newest first."""

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value

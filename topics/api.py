"""The admin API's bodies: what it accepts and answers (and its OpenAPI document shows).

A workflow itself is ``topics.workflows.Workflow``; a run, ``topics.runs.RunRecord``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from topics.audit import AuditAction, AuditEvent
from topics.commands import ActionCommand
from topics.dead_letter import DeadLetter
from topics.events import RecordRef
from topics.outcomes import OutcomeStatus
from topics.runs import ConditionResult, RunRecord, RunStatus, StepStatus
from topics.workflows import InboundSecret, Workflow, WorkflowStatus

SERVER_FIELDS = ("updated_at", "inbound_secrets", "inbound_secret")
"""Fields of a workflow only the server sets; a body that has them is not refused, they are
ignored (so what a GET, or a write, answered can be PUT back)."""
_OPTIONAL_IN_BODIES = ("id", "tenant_id", "status", "version")


def _workflow_body() -> type[BaseModel]:
    """A workflow as POST and PUT take it: ``id`` (made when absent), ``tenant_id`` (from a
    tenant's token), ``status`` and ``version`` (on PUT: the version the change is based on)
    optional."""
    fields: dict[str, Any] = {}
    for name, info in Workflow.model_fields.items():
        if name in _OPTIONAL_IN_BODIES:
            kind: Any = info.annotation
            if info.metadata:  # the id's pattern, the version's minimum
                kind = Annotated[(kind, *info.metadata)]
            fields[name] = (kind | None, None)
        else:
            fields[name] = (info.annotation, info)
    for name in SERVER_FIELDS:
        fields[name] = (Any, None)
    return create_model("WorkflowBody", __config__=ConfigDict(extra="forbid"), **fields)


WorkflowBody = _workflow_body()


class ProblemBody(BaseModel):
    loc: str
    msg: str


class ErrorBody(BaseModel):
    error: str
    problems: list[ProblemBody] | None = None


class WorkflowQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    """Operators only: a tenant's token lists its own tenant."""
    status: WorkflowStatus | None = None


def secret_hint(secret: str) -> str:
    """What the API shows of an inbound webhook secret once it was made: its prefix and its
    last four characters (``whsec_…abcd``), enough to tell secrets apart, not to sign."""
    prefix, underscore, _ = secret.partition("_")
    shown = prefix + underscore if underscore and len(prefix) <= 8 else ""
    return f"{shown}…{secret[-4:]}"


class InboundSecretHint(BaseModel):
    """An inbound webhook secret as reads show it: never the secret itself (only the answer
    that made it carries that, in ``inbound_secret``)."""

    model_config = ConfigDict(frozen=True)

    hint: Annotated[
        str,
        Field(description="The secret's prefix and last four characters, e.g. `whsec_…abcd`"),
    ]
    created_at: datetime
    expires_at: datetime | None = None

    @classmethod
    def of(cls, secret: InboundSecret) -> InboundSecretHint:
        return cls(
            hint=secret_hint(secret.secret),
            created_at=secret.created_at,
            expires_at=secret.expires_at,
        )


class PublicWorkflow(Workflow):
    """A workflow as the API shows it: as saved, but its inbound webhook secrets as hints.
    The definitions topic keeps the secrets (the workers check deliveries with them)."""

    inbound_secrets: list[InboundSecretHint] = Field(  # type: ignore[assignment]
        default_factory=list,
        description="A Webhook Received workflow's signing secrets, newest first, as hints "
        "with their dates: a secret is shown only in the answer that made it "
        "(`inbound_secret`), never by a read.",
    )

    @classmethod
    def of(cls, workflow: Workflow, **extra: Any) -> Self:
        """``workflow`` as shown (built, not validated: it was validated when saved)."""
        fields = {name: getattr(workflow, name) for name in Workflow.model_fields}
        fields["inbound_secrets"] = [InboundSecretHint.of(s) for s in workflow.inbound_secrets]
        return cast(Self, cls.model_construct(**fields, **extra))


class SavedWorkflow(PublicWorkflow):
    """The answer to a write of a workflow: the workflow as shown, and the inbound webhook
    secret that this write made, if it made one (else the field is absent)."""

    inbound_secret: str | None = Field(
        default=None,
        description="The inbound webhook signing secret this write made, shown in this answer "
        "only: a create or a change that gives a workflow the Webhook Received trigger, and "
        "every rotation, make one (reads show it as a hint). Absent when this write made none.",
    )


class WorkflowList(BaseModel):
    workflows: list[PublicWorkflow]
    count: int


class Deleted(BaseModel):
    deleted: str


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: Annotated[float, Field(ge=0, le=30 * 86400)] = 86400


class VersionList(BaseModel):
    workflow_id: str
    versions: list[PublicWorkflow]
    """Newest first."""


class TriggerResult(BaseModel):
    type: str
    matched: bool
    reason: str = ""
    """Why it fired or did not, in words: for a score threshold the threshold and the score
    before and after, for a stage change the from and to wanted and the actual values."""
    values: dict[str, Any] = Field(default_factory=dict)
    """The values the reason compares, as data."""


class ConditionNode(BaseModel):
    """A workflow's condition tree with each group's verdict: a ``not`` that held reads as
    a group that passed over a leaf that did not."""

    kind: Literal["all", "any", "not", "leaf"]
    loc: str
    """Where it is in the workflow (``conditions.all.0``), as a 422 names it."""
    passed: bool
    children: list[ConditionNode] = Field(default_factory=list)
    """A group's conditions, in order (empty for a leaf)."""
    result: ConditionResult | None = None
    """A leaf's field, operator, expected and actual value."""


class DryRunResult(BaseModel):
    workflow_id: str
    workflow_version: int
    workflow_status: WorkflowStatus
    tenant_matches: bool
    trigger: TriggerResult
    conditions: list[ConditionResult]
    """Each leaf, in the order of the tree; ``condition_tree`` has the groups' verdicts."""
    condition_tree: ConditionNode | None = None
    """The conditions as the workflow nests them, each group with its verdict."""
    outcome: str
    error: str | None = None
    commands: list[ActionCommand]
    emitted: bool


Name = Annotated[str, Field(min_length=1, max_length=256)]
"""A record type, record id, workflow id or tenant id in a query: at most this long."""


class RunQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: RunStatus | None = None
    since: AwareDatetime | None = None
    """Runs decided at or after this time."""
    until: AwareDatetime | None = None
    """Runs decided before this time."""
    cursor: str | None = None
    """The ``next_cursor`` of the previous page."""
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    record_type: Name | None = None
    """Only the runs of this type of record's events (alone: of every record of the type)."""
    record_id: Name | None = None
    """Only the runs of this record's events (with ``record_type``, of that type only)."""


class RunSearch(RunQuery):
    """The runs of all of a tenant's workflows (the operator's token: of every tenant, or the
    one ``tenant_id`` names)."""

    tenant_id: Name | None = None
    """Operators only: a tenant's token searches its own tenant."""
    workflow_id: Name | None = None


class RunPage(BaseModel):
    runs: list[RunRecord]
    """Newest first."""
    next_cursor: str | None = None


class Attempt(BaseModel):
    attempt: int
    status: OutcomeStatus
    detail: str | None = None
    error: str | None = None
    at: datetime
    next_attempt_at: datetime | None = None


class StepHistory(BaseModel):
    step: int
    type: str
    action_id: str
    params: dict[str, Any] | None = None
    status: StepStatus
    attempts: list[Attempt]


class RunDetail(BaseModel):
    run: RunRecord
    """The run's latest record: the trigger event, each condition with its actual value."""
    steps: list[StepHistory]
    """Each issued action with its rendered parameters and every attempt the executors made."""
    condition_tree: ConditionNode | None = None
    """The run's conditions as its workflow version nests them, each group with its verdict
    (absent when that version is no longer known, or has no conditions)."""


class TenantQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    """Operators only: a tenant's token asks about its own tenant."""


class WorkflowDecision(BaseModel):
    run_id: str
    workflow_id: str
    workflow_version: int
    workflow_name: str
    status: RunStatus
    stopped_by: list[ConditionResult]
    """The leaves whose results made the conditions fail (empty when the run went on): under
    a ``not``, a leaf that passed."""
    condition_tree: ConditionNode | None = None
    error: str | None = None


class NotTriggered(BaseModel):
    """An active workflow that did not run for an event: why its trigger did not fire."""

    workflow_id: str
    workflow_name: str
    trigger: str
    reason: str
    values: dict[str, Any] = Field(default_factory=dict)
    matched: bool = False
    """Its trigger matches the event after all: it was not active when the event came (or
    its run has left the history)."""


class EventDecisions(BaseModel):
    event_id: str
    operation: str | None = None
    occurred_at: datetime
    runs: list[WorkflowDecision]
    """One per workflow whose trigger matched the event."""
    not_triggered: list[NotTriggered] = Field(default_factory=list)
    """The other active workflows on the record type, each with why its trigger did not fire
    for this event."""
    not_triggered_omitted: int = 0
    """More active workflows that did not run, past the ones ``not_triggered`` explains."""


class WatchingWorkflow(BaseModel):
    workflow_id: str
    name: str
    trigger: str


class RecordDecisions(BaseModel):
    tenant_id: str
    record: RecordRef
    summary: str
    events: list[EventDecisions]
    """The record's recent events that matched some workflow's trigger, newest first."""
    active_workflows: list[WatchingWorkflow]
    """The tenant's active workflows on this record type, whether they matched or not."""


JsonSchema = Annotated[dict[str, Any], Field(description="A JSON Schema (draft 2020-12)")]


class TriggerKindInfo(BaseModel):
    type: str
    fires_on: list[str] | None = Field(
        description="The record operations it can fire on; `null` for kinds fired by something "
        "else (a delivery, the clock, a timer)"
    )
    summary: str | None = None
    parameters: JsonSchema
    """The trigger's parameters besides `type`, from the model that validates them."""


ValueKind = Literal["none", "scalar", "list", "any"]


class OperatorInfo(BaseModel):
    op: str
    aliases: list[str]
    value: str
    """What a condition's `value` must be, in words."""
    value_kind: ValueKind
    """The same for a program: no value, one scalar, a list of scalars, any JSON value."""
    compares_before: bool
    """Whether it compares the field's value before the change with the one after."""
    fits: list[str]
    """The field types (of `field_types`) it can pass for; on others it never passes."""


class ActionTypeInfo(BaseModel):
    type: str
    summary: str
    topic: str
    parameters: JsonSchema
    """The action's parameters besides `type`, from the model that validates them."""


class Catalog(BaseModel):
    """Every trigger kind, condition operator and action type, from the registries."""

    triggers: list[TriggerKindInfo]
    operators: list[OperatorInfo]
    actions: list[ActionTypeInfo]
    field_types: list[str]
    """The field types an operator's `fits` names."""


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: Name | None = None
    """Operators only: a tenant's token reads its own tenant's log."""
    subject_type: Literal["workflow", "token"] | None = None
    subject_id: Name | None = None
    """One workflow's (or token's) changes: the Versions tab's "who changed it and when"."""
    action: AuditAction | None = None
    since: AwareDatetime | None = None
    """Changes made at or after this time."""
    until: AwareDatetime | None = None
    """Changes made before this time."""
    cursor: Annotated[str, Field(max_length=32)] | None = None
    """The ``next_cursor`` of the previous page."""
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class AuditEntry(AuditEvent):
    """An audit event as the API shows it: with the workflow version it made (or deleted)."""

    version: int | None = None


class AuditPage(BaseModel):
    events: list[AuditEntry]
    """Newest first."""
    next_cursor: str | None = None


class DeadLetterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: Name | None = None
    """Only the letters of messages read from this topic."""
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    cursor: Annotated[str, Field(max_length=32)] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetter]
    """Newest first: each with its source position, the reason, and the message (base64)."""
    next_cursor: str | None = None


class DiffQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_version: Annotated[int, Field(ge=1)]
    to_version: Annotated[int, Field(ge=1)] | None = None
    """The newest version when absent."""


class FieldChange(BaseModel):
    path: str
    """The field that differs, dotted with list indexes: `actions.1.subject`."""
    kind: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class VersionDiff(BaseModel):
    workflow_id: str
    from_version: int
    to_version: int
    changes: list[FieldChange]
    """In document order; `version` and `updated_at` (which every version changes) left out."""
    truncated: bool
    """More changes than the answer lists."""


class RunCountsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: Name | None = None
    """Operators only: a tenant's token counts its own tenant's runs."""
    since: AwareDatetime
    """Count the runs decided at or after this time (the list's "last 24 hours")."""


class WorkflowRunCounts(BaseModel):
    workflow_id: str
    runs: int
    """Runs decided since ``since`` that the history holds."""
    failed: int
    """Those among them ``failed`` or ``partially_failed``."""
    by_status: dict[str, int]
    last_run_id: str | None = None
    """The newest run the history holds, however old."""
    last_status: RunStatus | None = None
    last_decided_at: datetime | None = None


class RunCountsPage(BaseModel):
    since: datetime
    workflows: list[WorkflowRunCounts]
    """Every workflow of the tenant with runs in the history, by id."""

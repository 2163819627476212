"""The tracker's file formats as pydantic models: incidents (SPEC 3),
automations with Prefect's trigger and action schemas (SPEC 5) and the
configuration (SPEC 7).

Cross-file rules (severities from the configured scale, notifier and webhook
names, an `id:` that must equal the file name) read a `Context` passed as
pydantic's validation context; without one, the default configuration applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)


class Strict(BaseModel):
    # Unknown keys are errors: a typo must not pass silently. (Empty defaults are
    # default_factory fields: a literal [] or {} would be deep-copied for each model.)
    model_config = ConfigDict(extra="forbid", defer_build=True)


# -- configuration ---------------------------------------------------------------------

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
NonEmpty = Annotated[str, Field(min_length=1)]


class Severity(Strict):
    id: NonEmpty
    label: NonEmpty


DEFAULT_SEVERITIES = (
    Severity(id="SEV-1", label="Critical"),
    Severity(id="SEV-2", label="High"),
    Severity(id="SEV-3", label="Moderate"),
    Severity(id="SEV-4", label="Low"),
    Severity(id="SEV-5", label="Informational"),
)


class Bot(Strict):
    name: NonEmpty = "gitops-incidents"
    email: NonEmpty = "gitops-incidents@users.noreply.invalid"


class Notifier(Strict):
    kind: Literal["slack", "teams", "webhook", "apprise"]
    url_env: EnvName = Field(description="environment variable holding the URL")


class Webhook(Strict):
    url_env: EnvName = Field(description="environment variable holding the URL")
    headers: dict[str, str] = Field(default_factory=dict)


class SiteConfig(Strict):
    title: NonEmpty = "Incidents"
    repo_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(
        None,
        description="base URL of the repository: links to commits, its editor, new incidents",
    )
    forge: Literal["github", "gitlab", "gitea"] | None = Field(
        None,
        description="the forge of repo_url (Forgejo, Codeberg: gitea); by default, from its host",
    )


class PrefectConfig(Strict):
    emit_events: bool = Field(
        False, description="publish every derived event to the Prefect server's events API"
    )
    ui_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(
        None, description="Prefect's UI, for links to resources"
    )
    cloud_account: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] | None = Field(
        None,
        description="Prefect Cloud's account id: with cloud_workspace, links into Cloud's UI",
    )
    cloud_workspace: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] | None = Field(
        None, description="Prefect Cloud's workspace id"
    )


class Config(Strict):
    namespace: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")] = "prefect-cloud"
    branch: NonEmpty = "main"
    severities: Annotated[tuple[Severity, ...], Field(min_length=1)] = DEFAULT_SEVERITIES
    bot: Bot = Bot()
    notifiers: dict[str, Notifier] = Field(default_factory=dict)
    webhooks: dict[str, Webhook] = Field(default_factory=dict)
    site: SiteConfig = SiteConfig()
    prefect: PrefectConfig = PrefectConfig()

    @field_validator("severities")
    @classmethod
    def _unique_severities(cls, value: tuple[Severity, ...]) -> tuple[Severity, ...]:
        seen: set[str] = set()
        for severity in value:
            if severity.id in seen:
                raise ValueError(f"severity {severity.id!r} is listed twice")
            seen.add(severity.id)
        return value


@dataclass(frozen=True)
class Context:
    """What validation of one file needs to know about the rest of the repository."""

    config: Config = field(default_factory=Config)
    file_id: str | None = None


def _context(info: ValidationInfo) -> Context:
    return info.context if isinstance(info.context, Context) else Context()


def _known_severity(value: str, info: ValidationInfo) -> str:
    scale = [s.id for s in _context(info).config.severities]
    if value not in scale:
        raise ValueError(f"unknown severity {value!r}; the scale is {', '.join(scale)}")
    return value


SeverityId = Annotated[str, AfterValidator(_known_severity)]


def _matches_file_name(value: str | None, info: ValidationInfo) -> str | None:
    expected = _context(info).file_id
    if value is not None and expected is not None and value != expected:
        raise ValueError(f"id {value!r} does not match the file name {expected!r}")
    return value


FileId = Annotated[str | None, AfterValidator(_matches_file_name)]


# -- incidents ---------------------------------------------------------------------------


def _timestamp_input(value: Any) -> Any:
    # pydantic would read a number as seconds since 1970; a number here is a mistake.
    if not isinstance(value, str | datetime):
        raise ValueError("expected a timestamp such as 2026-11-27T09:12:00Z")
    return value


def _utc(value: datetime) -> datetime:
    """In UTC, so that one instant has one spelling; without a zone, UTC is assumed."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00 is in year 10000 in UTC
        raise ValueError("the time is out of range once converted to UTC") from None


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp_input),
    AfterValidator(_utc),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

RESOURCE_ID_PATTERN = r"^[^\s.]+(\.[^\s.]+)+$"
ResourceId = Annotated[
    str,
    Field(
        pattern=RESOURCE_ID_PATTERN,
        description="a Prefect resource id such as prefect.work-pool.k8s-prod",
    ),
]


class RelatedResource(Strict):
    id: ResourceId
    role: NonEmpty | None = Field(None, description="default: the id's kind, last segment")
    name: NonEmpty | None = None


def _related_item(value: Any) -> Any:
    if isinstance(value, str):
        return {"id": value}
    if not isinstance(value, dict | RelatedResource):
        raise ValueError("expected a resource id such as prefect.work-pool.k8s-prod, or a mapping")
    return value


RelatedItem = Annotated[
    RelatedResource,
    BeforeValidator(_related_item),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": RESOURCE_ID_PATTERN},
                RelatedResource.model_json_schema(),
            ]
        }
    ),
]


class Comment(Strict):
    text: NonEmpty
    author: NonEmpty | None = Field(None, description="default: the commit's author")
    at: Timestamp | None = Field(None, description="default: the commit's time")


def _unique(value: list[str]) -> list[str]:
    duplicates = sorted({v for v in value if value.count(v) > 1})
    if duplicates:
        raise ValueError(f"listed more than once: {', '.join(duplicates)}")
    return value


Tags = Annotated[list[NonEmpty], AfterValidator(_unique)]


class Incident(Strict):
    id: FileId = Field(None, description="if present, must equal the file name")
    name: NonEmpty
    severity: SeverityId
    status: Literal["active", "resolved"] = "active"
    start_time: Timestamp | None = Field(None, description="default: the declaring commit's time")
    end_time: Timestamp | None = Field(None, description="default: the resolving commit's time")
    summary: str = ""
    tags: Tags = Field(default_factory=list)
    related_resources: list[RelatedItem] = Field(default_factory=list)
    impact: str = ""
    roles: dict[NonEmpty, NonEmpty | list[NonEmpty]] = Field(default_factory=dict)
    comments: list[Comment] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("end_time")
    @classmethod
    def _end_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start_time")
        if value is not None and start is not None and value < start:
            raise ValueError("end_time is before start_time")
        if value is not None and info.data.get("status") == "active":
            raise ValueError("end_time is set but status is active (resolve, or remove end_time)")
        return value


# -- automations: triggers ---------------------------------------------------------------


def _duration_input(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str | timedelta):
        raise ValueError("expected seconds or an ISO 8601 duration such as PT30M")
    return value


# Deadlines must stay within the calendar (year 9999): no window is longer than this.
MAX_DURATION = timedelta(days=36_525)


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration cannot be negative")
    if value > MAX_DURATION:
        raise ValueError("a duration cannot be longer than 100 years")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration_input),
    AfterValidator(_not_negative),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "format": "duration"},
            ],
            "description": "seconds, or an ISO 8601 duration such as PT30M",
        }
    ),
]

ResourceSpecification = dict[str, str | list[str]]
_SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
    },
}
MIN_PROACTIVE_WITHIN = timedelta(seconds=10)


def _as_spec_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class EventTrigger(Strict):
    type: Literal["event"] = "event"
    match: ResourceSpecification = Field(default_factory=dict)
    match_related: Annotated[
        list[ResourceSpecification],
        BeforeValidator(_as_spec_list),
        WithJsonSchema({"anyOf": [_SPEC_SCHEMA, {"type": "array", "items": _SPEC_SCHEMA}]}),
    ] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    for_each: list[str] = Field(default_factory=list)
    posture: Literal["Reactive", "Proactive"]
    threshold: Annotated[int, Field(ge=0)] = 1  # 0 as in Prefect
    within: Duration = timedelta(0)

    @model_validator(mode="after")
    def _windows(self) -> EventTrigger:
        if self.posture == "Proactive" and self.within < MIN_PROACTIVE_WITHIN:
            if self.within:
                raise ValueError("within of a Proactive trigger must be at least 10 seconds")
            # Prefect's rule: a Proactive trigger's window is at least 10 s; 0 means 10 s.
            self.within = MIN_PROACTIVE_WITHIN
        if self.threshold > 1 and not self.within:
            raise ValueError("a threshold above 1 needs a window: set within above 0")
        return self


class CompoundTrigger(Strict):
    type: Literal["compound"]
    triggers: Annotated[list[Trigger], Field(min_length=1)]
    require: Annotated[int, Field(ge=1)] | Literal["any", "all"]
    within: Duration | None = None

    @model_validator(mode="after")
    def _require_bound(self) -> CompoundTrigger:
        if isinstance(self.require, int) and self.require > len(self.triggers):
            raise ValueError(
                f"require is {self.require} but there are only {len(self.triggers)} triggers"
            )
        return self


class SequenceTrigger(Strict):
    type: Literal["sequence"]
    triggers: Annotated[list[Trigger], Field(min_length=1)]
    within: Duration | None = None


def _trigger_type(value: Any) -> str | None:
    # Prefect lets an event trigger leave out its type, as the seed's trigger does.
    if isinstance(value, dict):
        kind = value.get("type", "event")
        return kind if isinstance(kind, str) else None
    return getattr(value, "type", None)


Trigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[CompoundTrigger, Tag("compound")]
    | Annotated[SequenceTrigger, Tag("sequence")],
    Discriminator(
        _trigger_type,
        custom_error_type="trigger_type",
        custom_error_message="a trigger's type is event (the default), compound or sequence",
    ),
]


# -- automations: actions ----------------------------------------------------------------


def _compiles(value: str) -> str:
    # Jinja is imported when an automation is validated, not to read an incident.
    from gitops_incidents.templates import TemplateError, compile_template

    try:
        compile_template(value)
    except TemplateError as exc:
        raise ValueError(f"{exc} (template line {exc.lineno})") from None
    return value


TemplateStr = Annotated[str, AfterValidator(_compiles), Field(description="a Jinja template")]


class DoNothing(Strict):
    type: Literal["do-nothing"]


class SendNotification(Strict):
    type: Literal["send-notification"]
    target: NonEmpty = Field(description="a notifier named in gitops-incidents.yaml")
    subject: TemplateStr = "Prefect automated notification"
    body: TemplateStr

    @field_validator("target")
    @classmethod
    def _known_notifier(cls, value: str, info: ValidationInfo) -> str:
        return _configured(value, _context(info).config.notifiers, "notifier")


class CallWebhook(Strict):
    type: Literal["call-webhook"]
    target: NonEmpty | None = Field(None, description="a webhook named in gitops-incidents.yaml")
    url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    payload: TemplateStr = "{{ event | tojson }}"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("target")
    @classmethod
    def _known_webhook(cls, value: str | None, info: ValidationInfo) -> str | None:
        webhooks = _context(info).config.webhooks
        return None if value is None else _configured(value, webhooks, "webhook")

    @model_validator(mode="after")
    def _one_destination(self) -> CallWebhook:
        if (self.target is None) == (self.url is None):
            raise ValueError("give exactly one of target (a configured webhook) or url")
        return self


def _configured(name: str, known: dict[str, Any], what: str) -> str:
    if name not in known:
        names = ", ".join(sorted(known)) or "none are configured"
        raise ValueError(f"unknown {what} {name!r} (gitops-incidents.yaml: {names})")
    return name


class Sourced(Strict):
    """An action whose target is selected by id or inferred from the triggering event."""

    id_field: ClassVar[str]
    source: Literal["selected", "inferred"] = "selected"

    @model_validator(mode="after")
    def _id_matches_source(self) -> Sourced:
        has_id = getattr(self, self.id_field) is not None
        if self.source == "selected" and not has_id:
            raise ValueError(f"{self.id_field} is required when source is 'selected'")
        if self.source == "inferred" and has_id:
            raise ValueError(f"{self.id_field} is not allowed when source is 'inferred'")
        return self


class IncidentAction(Sourced):
    id_field = "incident_id"
    incident_id: NonEmpty | None = None


class DeclareIncident(Strict):
    type: Literal["declare-incident"]
    name: TemplateStr
    summary: TemplateStr = ""
    severity: SeverityId
    tags: Tags = Field(default_factory=list)
    related: Literal["inferred"] | list[ResourceId] = "inferred"


class ResolveIncident(IncidentAction):
    type: Literal["resolve-incident"]


class ReopenIncident(IncidentAction):
    type: Literal["reopen-incident"]


class ChangeIncidentSeverity(IncidentAction):
    type: Literal["change-incident-severity"]
    severity: SeverityId


class CommentOnIncident(IncidentAction):
    type: Literal["comment-on-incident"]
    text: TemplateStr


class AutomationAction(Sourced):
    id_field = "automation_id"
    automation_id: NonEmpty | None = None


class PauseAutomation(AutomationAction):
    type: Literal["pause-automation"]


class ResumeAutomation(AutomationAction):
    type: Literal["resume-automation"]


class WorkPoolAction(Sourced):
    id_field = "work_pool_id"
    work_pool_id: NonEmpty | None = None


class PauseWorkPool(WorkPoolAction):
    type: Literal["pause-work-pool"]


class ResumeWorkPool(WorkPoolAction):
    type: Literal["resume-work-pool"]


class WorkQueueAction(Sourced):
    id_field = "work_queue_id"
    work_queue_id: NonEmpty | None = None


class PauseWorkQueue(WorkQueueAction):
    type: Literal["pause-work-queue"]


class ResumeWorkQueue(WorkQueueAction):
    type: Literal["resume-work-queue"]


class DeploymentAction(Sourced):
    id_field = "deployment_id"
    deployment_id: NonEmpty | None = None


class PauseDeployment(DeploymentAction):
    type: Literal["pause-deployment"]


class ResumeDeployment(DeploymentAction):
    type: Literal["resume-deployment"]


class RunDeployment(DeploymentAction):
    type: Literal["run-deployment"]
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None


# Flow-run actions act on the flow run of the triggering event, as in Prefect.
class CancelFlowRun(Strict):
    type: Literal["cancel-flow-run"]


class SuspendFlowRun(Strict):
    type: Literal["suspend-flow-run"]


class ResumeFlowRun(Strict):
    type: Literal["resume-flow-run"]


StateType = Literal[
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
    "PAUSED",
    "CANCELLING",
]


class ChangeFlowRunState(Strict):
    type: Literal["change-flow-run-state"]
    name: NonEmpty | None = None
    state: StateType
    message: str | None = None
    force: bool = False


Action = Annotated[
    DoNothing
    | SendNotification
    | CallWebhook
    | DeclareIncident
    | ResolveIncident
    | ReopenIncident
    | ChangeIncidentSeverity
    | CommentOnIncident
    | PauseAutomation
    | ResumeAutomation
    | PauseWorkPool
    | ResumeWorkPool
    | PauseWorkQueue
    | ResumeWorkQueue
    | PauseDeployment
    | ResumeDeployment
    | RunDeployment
    | CancelFlowRun
    | SuspendFlowRun
    | ResumeFlowRun
    | ChangeFlowRunState,
    Field(discriminator="type"),
]


class Automation(Strict):
    # JSON files may name their schema for editors, as YAML files do in a comment.
    schema_url: str | None = Field(None, alias="$schema")
    id: FileId = Field(None, description="if present, must equal the file name")
    name: NonEmpty
    description: str = ""
    enabled: bool = True
    trigger: Trigger
    actions: list[Action] = Field(default_factory=list)
    actions_on_trigger: list[Action] = Field(default_factory=list)
    actions_on_resolve: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_actions(self) -> Automation:
        if not self.all_actions:
            raise ValueError("an automation needs at least one action")
        return self

    @property
    def all_actions(self) -> list[Action]:
        """The combined list that firings number (SPEC 5.3)."""
        return [*self.actions, *self.actions_on_trigger, *self.actions_on_resolve]

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from gitops_incidents.events import default_role
from gitops_incidents.models import (
    Automation,
    CompoundTrigger,
    Config,
    Context,
    EventTrigger,
    Incident,
    SequenceTrigger,
)
from gitops_incidents.tracker import id_problem
from gitops_incidents.yamlio import load, load_json

SEED_TRIGGER_JSON = """{"match": {"prefect.resource.id": "prefect-cloud.incident.*"},
 "expect": ["prefect-cloud.incident.declared"],
 "posture": "Reactive", "threshold": 1, "within": 0}"""

SEED_TRIGGER_YAML = """\
match:
  prefect.resource.id: prefect-cloud.incident.*
expect: [prefect-cloud.incident.declared]
posture: Reactive
threshold: 1
within: 0
"""

DO_NOTHING = [{"type": "do-nothing"}]


def automation(
    trigger: Any, actions: Any = DO_NOTHING, context: Context | None = None
) -> Automation:
    data = {"name": "a", "trigger": trigger, "actions": actions}
    return Automation.model_validate(data, context=context or Context())


@pytest.mark.parametrize("trigger", [load_json(SEED_TRIGGER_JSON), load(SEED_TRIGGER_YAML)])
def test_seed_trigger_is_accepted_as_written(trigger: dict[str, Any]) -> None:
    parsed = automation(trigger).trigger
    assert isinstance(parsed, EventTrigger)
    assert parsed.match == {"prefect.resource.id": "prefect-cloud.incident.*"}
    assert parsed.expect == ["prefect-cloud.incident.declared"]
    assert (parsed.posture, parsed.threshold, parsed.within) == ("Reactive", 1, timedelta(0))


EVENT = {"posture": "Reactive"}

# (trigger, the error's text or None when valid, the check on a valid trigger)
TRIGGERS: list[tuple[str, dict[str, Any], str | None]] = [
    ("posture required", {"expect": ["x"]}, "Field required"),
    ("posture values", {"posture": "Metric"}, "Input should be 'Reactive' or 'Proactive'"),
    ("threshold defaults to 1", EVENT, None),
    ("threshold > 1 needs within", {**EVENT, "threshold": 2}, "a threshold above 1 needs a window"),
    ("threshold > 1 with within", {**EVENT, "threshold": 2, "within": 60}, None),
    ("threshold 0, as in Prefect", {**EVENT, "threshold": 0}, None),
    ("a negative threshold", {**EVENT, "threshold": -1}, "greater than or equal to 0"),
    ("within ISO 8601", {**EVENT, "within": "PT30M"}, None),
    ("within negative", {**EVENT, "within": -1}, "a duration cannot be negative"),
    ("within nonsense", {**EVENT, "within": "soon"}, "timedelta"),
    ("within boolean", {**EVENT, "within": True}, "expected seconds or an ISO 8601 duration"),
    ("proactive within 0 is 10 s", {"posture": "Proactive", "within": 0}, None),
    ("proactive within 5 s", {"posture": "Proactive", "within": 5}, "at least 10 seconds"),
    ("proactive within 10 s", {"posture": "Proactive", "within": 10}, None),
    ("match_related single spec", {**EVENT, "match_related": {"prefect.resource.role": "x"}}, None),
    ("match_related list", {**EVENT, "match_related": [{"a": "x"}, {"b": ["y", "z"]}]}, None),
    ("match values", {**EVENT, "match": {"a": 1}}, "Input should be a valid string"),
    ("unknown key", {**EVENT, "expects": ["x"]}, "Extra inputs are not permitted"),
    ("unknown type", {"type": "metric"}, "a trigger's type is event"),
    (
        "compound require all",
        {"type": "compound", "require": "all", "triggers": [EVENT, EVENT]},
        None,
    ),
    (
        "compound require 2 of 2",
        {"type": "compound", "require": 2, "triggers": [EVENT, EVENT]},
        None,
    ),
    (
        "compound require 3 of 2",
        {"type": "compound", "require": 3, "triggers": [EVENT, EVENT]},
        "require is 3 but there are only 2 triggers",
    ),
    ("compound require 0", {"type": "compound", "require": 0, "triggers": [EVENT]}, "require"),
    (
        "compound require some",
        {"type": "compound", "require": "some", "triggers": [EVENT]},
        "require",
    ),
    (
        "compound without triggers",
        {"type": "compound", "require": "any", "triggers": []},
        "at least 1",
    ),
    ("sequence", {"type": "sequence", "triggers": [EVENT, EVENT], "within": "PT1H"}, None),
    (
        "nested composites",
        {
            "type": "sequence",
            "triggers": [
                {
                    "type": "compound",
                    "require": "any",
                    "triggers": [EVENT, {"posture": "Proactive"}],
                },
                EVENT,
            ],
        },
        None,
    ),
    (
        "nested child invalid",
        {
            "type": "sequence",
            "triggers": [{"type": "compound", "require": "any", "triggers": [{}]}],
        },
        "Field required",
    ),
]


@pytest.mark.parametrize(("name", "trigger", "error"), TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_trigger_rules(name: str, trigger: dict[str, Any], error: str | None) -> None:
    if error is None:
        automation(trigger)
    else:
        with pytest.raises(ValidationError, match=error):
            automation(trigger)


def test_trigger_defaults_and_proactive_minimum() -> None:
    parsed = automation({"posture": "Proactive"}).trigger
    assert isinstance(parsed, EventTrigger)
    assert parsed.within == timedelta(seconds=10)
    assert (parsed.threshold, parsed.after, parsed.for_each, parsed.match) == (1, [], [], {})
    nested = automation(TRIGGERS[-2][1]).trigger
    assert isinstance(nested, SequenceTrigger)
    assert isinstance(nested.triggers[0], CompoundTrigger)


SOURCED = [
    ("resolve-incident", "incident_id"),
    ("reopen-incident", "incident_id"),
    ("comment-on-incident", "incident_id"),
    ("change-incident-severity", "incident_id"),
    ("pause-automation", "automation_id"),
    ("resume-automation", "automation_id"),
    ("pause-work-pool", "work_pool_id"),
    ("resume-work-pool", "work_pool_id"),
    ("pause-work-queue", "work_queue_id"),
    ("resume-work-queue", "work_queue_id"),
    ("pause-deployment", "deployment_id"),
    ("resume-deployment", "deployment_id"),
    ("run-deployment", "deployment_id"),
]
EXTRA = {"comment-on-incident": {"text": "hi"}, "change-incident-severity": {"severity": "SEV-1"}}


@pytest.mark.parametrize(("kind", "id_field"), SOURCED)
@pytest.mark.parametrize(
    ("source", "with_id", "error"),
    [
        ("selected", True, None),
        ("selected", False, "is required when source is 'selected'"),
        ("inferred", False, None),
        ("inferred", True, "is not allowed when source is 'inferred'"),
        (None, False, "is required when source is 'selected'"),  # Prefect's default: selected
    ],
)
def test_source_and_id(
    kind: str, id_field: str, source: str | None, with_id: bool, error: str | None
) -> None:
    action: dict[str, Any] = {"type": kind, **EXTRA.get(kind, {})}
    if source:
        action["source"] = source
    if with_id:
        action[id_field] = "some-id"
    if error is None:
        automation(EVENT, [action])
    else:
        with pytest.raises(ValidationError, match=f"{id_field} {error}"):
            automation(EVENT, [action])


CONFIG = Config.model_validate(
    {
        "severities": [{"id": "P1", "label": "Page"}, {"id": "P2", "label": "Ticket"}],
        "notifiers": {"oncall": {"kind": "slack", "url_env": "ONCALL_URL"}},
        "webhooks": {"pager": {"url_env": "PAGER_URL"}},
    }
)

ACTIONS: list[tuple[dict[str, Any], str | None]] = [
    ({"type": "do-nothing"}, None),
    ({"type": "send-notification", "target": "oncall", "body": "{{ event.id }}"}, None),
    ({"type": "send-notification", "target": "nobody", "body": "x"}, "unknown notifier 'nobody'"),
    ({"type": "send-notification", "target": "oncall"}, "Field required"),
    ({"type": "send-notification", "target": "oncall", "body": "{{ x"}, "template syntax error"),
    (
        {
            "type": "send-notification",
            "target": "oncall",
            "body": "{% for a in b %}{% endfor %}" * 11,
        },
        "template has 11 for loops; at most 10",
    ),
    (
        {
            "type": "send-notification",
            "target": "oncall",
            "body": "{% for a in b %}{% for c in a %}{% for d in c %}{% endfor %}{% endfor %}{% endfor %}",
        },
        "nests for loops 3 deep; at most 2",
    ),
    ({"type": "call-webhook", "target": "pager"}, None),
    ({"type": "call-webhook", "url": "https://hooks.example.invalid/x"}, None),
    ({"type": "call-webhook"}, "give exactly one of target"),
    ({"type": "call-webhook", "target": "pager", "url": "https://x.invalid"}, "exactly one"),
    ({"type": "call-webhook", "target": "siren"}, "unknown webhook 'siren'"),
    ({"type": "call-webhook", "url": "ftp://x.invalid"}, "should match pattern"),
    ({"type": "declare-incident", "name": "{{ event.resource.id }}", "severity": "P1"}, None),
    ({"type": "declare-incident", "name": "x", "severity": "SEV-1"}, "unknown severity 'SEV-1'"),
    ({"type": "declare-incident", "name": "x", "severity": "P2", "related": ["prefect.x.y"]}, None),
    ({"type": "declare-incident", "name": "x", "severity": "P2", "related": "all"}, "related"),
    (
        {"type": "change-incident-severity", "source": "inferred", "severity": "P9"},
        "unknown severity",
    ),
    ({"type": "cancel-flow-run"}, None),
    ({"type": "suspend-flow-run"}, None),
    ({"type": "resume-flow-run"}, None),
    ({"type": "change-flow-run-state", "state": "FAILED", "message": "stop"}, None),
    ({"type": "change-flow-run-state", "state": "EXPLODED"}, "Input should be 'SCHEDULED'"),
    ({"type": "pause-work-pool", "work_pool_id": "k8s-prod", "extra": 1}, "Extra inputs"),
    ({"type": "launch-rockets"}, "does not match any of the expected tags"),
    ({"source": "inferred"}, "Unable to extract tag using discriminator 'type'"),
]


@pytest.mark.parametrize(("action", "error"), ACTIONS, ids=[str(a[0])[:60] for a in ACTIONS])
def test_actions(action: dict[str, Any], error: str | None) -> None:
    context = Context(config=CONFIG)
    if error is None:
        parsed = automation(EVENT, [action], context)
        assert parsed.all_actions[0].type == action["type"]
    else:
        with pytest.raises(ValidationError, match=error):
            automation(EVENT, [action], context)


def test_actions_are_numbered_across_the_three_lists() -> None:
    parsed = Automation.model_validate(
        {
            "name": "a",
            "trigger": EVENT,
            "actions": [{"type": "do-nothing"}],
            "actions_on_trigger": [{"type": "cancel-flow-run"}],
            "actions_on_resolve": [{"type": "resume-flow-run"}],
        }
    )
    assert [a.type for a in parsed.all_actions] == [
        "do-nothing",
        "cancel-flow-run",
        "resume-flow-run",
    ]
    with pytest.raises(ValidationError, match="at least one action"):
        automation(EVENT, [])


def incident(context: Context | None = None, **fields: Any) -> Incident:
    return Incident.model_validate({"name": "n", "severity": "SEV-1", **fields}, context=context)


INCIDENTS: list[tuple[dict[str, Any], str | None]] = [
    ({}, None),
    ({"status": "closed"}, "Input should be 'active' or 'resolved'"),
    ({"severity": "SEV-9"}, "unknown severity 'SEV-9'; the scale is SEV-1, SEV-2"),
    ({"start_time": 1700000000}, "expected a timestamp"),
    ({"start_time": "yesterday"}, "datetime"),
    (
        {
            "start_time": "2026-11-27T10:00:00Z",
            "status": "resolved",
            "end_time": "2026-11-27T09:00:00Z",
        },
        "end_time is before start_time",
    ),
    ({"end_time": "2026-11-27T09:00:00Z"}, "end_time is set but status is active"),
    ({"tags": ["a", "a"]}, "listed more than once: a"),
    ({"tags": [""]}, "at least 1 character"),
    ({"related_resources": ["k8s-prod"]}, "should match pattern"),
    ({"related_resources": [5]}, "expected a resource id"),
    ({"comments": [{"text": "x", "when": "now"}]}, "Extra inputs"),
    ({"comments": [{"author": "x"}]}, "Field required"),
    ({"roles": {"responders": ["a", "b"], "commander": "c"}}, None),
    ({"metadata": {"anything": {"goes": [1, 2]}}}, None),
    ({"severty": "SEV-1"}, "Extra inputs"),
    ({"id": "other"}, "id 'other' does not match the file name 'mine'"),
    ({"id": "mine"}, None),
]


@pytest.mark.parametrize(("fields", "error"), INCIDENTS, ids=[str(i[0])[:50] for i in INCIDENTS])
def test_incident_rules(fields: dict[str, Any], error: str | None) -> None:
    context = Context(file_id="mine")
    if error is None:
        incident(context, **fields)
    else:
        with pytest.raises(ValidationError, match=error):
            incident(context, **fields)


def test_incident_defaults_and_normalisation() -> None:
    parsed = incident(
        start_time="2026-11-27 09:12:00",
        related_resources=[
            "prefect.work-pool.k8s-prod",
            {"id": "prefect.flow.etl", "role": "cause"},
        ],
    )
    assert parsed.status == "active"
    assert parsed.start_time == datetime(2026, 11, 27, 9, 12, tzinfo=UTC)  # no zone: UTC
    assert [(r.role or default_role(r.id)) for r in parsed.related_resources] == [
        "work-pool",
        "cause",
    ]


def test_configured_scale_replaces_the_default() -> None:
    assert incident(Context(config=CONFIG), severity="P2").severity == "P2"
    with pytest.raises(ValidationError, match="unknown severity 'SEV-1'; the scale is P1, P2"):
        incident(Context(config=CONFIG))


CONFIGS: list[tuple[dict[str, Any], str | None]] = [
    ({}, None),
    ({"namespace": "Has Spaces"}, "should match pattern"),
    ({"severities": []}, "at least 1 item"),
    ({"severities": [{"id": "A", "label": "a"}, {"id": "A", "label": "b"}]}, "listed twice"),
    ({"notifiers": {"x": {"kind": "pigeon", "url_env": "X"}}}, "Input should be 'slack'"),
    ({"notifiers": {"x": {"kind": "slack", "url": "https://hooks.slack.invalid"}}}, "Extra inputs"),
    ({"webhooks": {"x": {"url_env": "not a name"}}}, "should match pattern"),
    ({"site": {"repo_url": "javascript:alert(1)"}}, "should match pattern"),
]


@pytest.mark.parametrize(("data", "error"), CONFIGS, ids=[json.dumps(c[0])[:50] for c in CONFIGS])
def test_config_rules(data: dict[str, Any], error: str | None) -> None:
    if error is None:
        assert Config.model_validate(data).namespace == "prefect-cloud"
    else:
        with pytest.raises(ValidationError, match=error):
            Config.model_validate(data)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("db-outage", None),
        ("2026-11-27.db_outage", None),
        ("a" * 128, None),
        ("a" * 129, "invalid id"),
        ("-leading-dash", "invalid id"),
        (".hidden", "invalid id"),
        ("a..b", "'..' is not allowed"),
        ("with space", "invalid id"),
        ("ünïcode", "invalid id"),
        ("semi;colon", "invalid id"),
        ("", "invalid id"),
    ],
)
def test_ids(value: str, problem: str | None) -> None:
    found = id_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)

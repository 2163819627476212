"""events.derive, the pure part of SPEC 4: one change to one incident at a time."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_incidents.events import CommitContext, IncidentState, derive
from gitops_incidents.models import Incident


def context(n: int, actor: str = "Alice") -> CommitContext:
    return CommitContext(
        sha=f"{n:040d}",
        occurred=f"2026-11-27T10:{n:02d}:00Z",
        authored=f"2026-11-27T10:{n:02d}:00+00:00",
        committed=f"2026-11-27T10:{n:02d}:00+00:00",
        actor_name=actor,
        actor_email=f"{actor.lower()}@example.invalid",
        namespace="prefect-cloud",
    )


def document(**fields: Any) -> dict[str, Any]:
    data = {"name": "Outage", "severity": "SEV-2", **fields}
    return Incident.model_validate(data).model_dump(mode="json")


def run(*versions: dict[str, Any] | None) -> list[list[tuple[str, dict[str, Any]]]]:
    """The events of each version in turn: (short name, payload without commit fields)."""
    state: IncidentState | None = None
    out = []
    for n, version in enumerate(versions, start=1):
        events, state = derive(state, version, "incidents/x.yaml", context(n), "x", 7)
        out.append(
            [
                (
                    e["event"].removeprefix("prefect-cloud.incident."),
                    {
                        k: v
                        for k, v in e["payload"].items()
                        if k not in ("commit", "path", "authored", "committed")
                    },
                )
                for e in events
            ]
        )
    return out


C1 = {"text": "one"}
C2 = {"text": "two"}
C3 = {"text": "three", "author": "bob", "at": "2026-11-27T09:00:00Z"}


def comment(text: str, author: str = "Alice", at: str = "2026-11-27T10:01:00Z") -> dict[str, str]:
    return {"text": text, "author": author, "at": at}


CASES: list[tuple[str, list[dict[str, Any] | None], list[tuple[str, dict[str, Any]]]]] = [
    ("no change", [document(), document()], []),
    (
        "fields in SPEC order",
        [document(), document(impact="bad", name="Outage 2", severity="SEV-1", tags=["a"])],
        [
            ("updated.name", {"field": "name", "old": "Outage", "new": "Outage 2"}),
            ("updated.severity", {"field": "severity", "old": "SEV-2", "new": "SEV-1"}),
            ("updated.tags", {"field": "tags", "old": [], "new": ["a"]}),
            ("updated.impact", {"field": "impact", "old": "", "new": "bad"}),
        ],
    ),
    (
        "explicit start_time replaces the declaring commit's",
        [document(), document(start_time="2026-11-27T09:00:00Z")],
        [
            (
                "updated.start_time",
                {
                    "field": "start_time",
                    "old": "2026-11-27T10:01:00Z",
                    "new": "2026-11-27T09:00:00Z",
                },
            )
        ],
    ),
    (
        "the same instant in another zone is no change",
        [
            document(start_time="2026-11-27T09:00:00Z"),
            document(start_time="2026-11-27T11:00:00+02:00"),
        ],
        [],
    ),
    (
        "end_time changed while resolved",
        [document(status="resolved"), document(status="resolved", end_time="2026-11-27T10:30:00Z")],
        [
            (
                "updated.end_time",
                {"field": "end_time", "old": "2026-11-27T10:01:00Z", "new": "2026-11-27T10:30:00Z"},
            )
        ],
    ),
    (
        "resolving with an end_time carries it",
        [document(), document(status="resolved", end_time="2026-11-27T10:30:00Z")],
        [
            (
                "resolved",
                {
                    "id": "x",
                    "name": "Outage",
                    "status": "resolved",
                    "severity": "SEV-2",
                    "tags": [],
                    "end_time": "2026-11-27T10:30:00Z",
                },
            )
        ],
    ),
    (
        "appended comments",
        [document(comments=[C1]), document(comments=[C1, C2, C3])],
        [
            ("comment.added", {"comment": comment("two", at="2026-11-27T10:02:00Z"), "index": 1}),
            (
                "comment.added",
                {"comment": comment("three", "bob", "2026-11-27T09:00:00Z"), "index": 2},
            ),
        ],
    ),
    (
        "a comment removed from the middle",
        [document(comments=[C1, C2, C3]), document(comments=[C1, C3])],
        [("comment.removed", {"comment": comment("two"), "index": 1})],
    ),
    (
        "a comment edited keeps its first author and time",
        [document(comments=[C1, C2]), document(comments=[C1, {"text": "TWO"}])],
        [("comment.edited", {"comment": comment("TWO"), "previous": comment("two"), "index": 1})],
    ),
    (
        "a comment inserted before the last",
        [document(comments=[C1, C2]), document(comments=[C1, C3, C2])],
        [
            (
                "comment.added",
                {"comment": comment("three", "bob", "2026-11-27T09:00:00Z"), "index": 1},
            )
        ],
    ),
]


@pytest.mark.parametrize(("name", "versions", "expected"), CASES, ids=[c[0] for c in CASES])
def test_second_version(
    name: str, versions: list[dict[str, Any] | None], expected: list[Any]
) -> None:
    assert run(*versions)[-1] == expected


def test_delete_and_declare_again_keeps_number_and_chain() -> None:
    state: IncidentState | None = None
    events = []
    for n, version in enumerate([document(), None, None, document(name="Back")], start=1):
        new, state = derive(state, version, "incidents/x.yaml", context(n), "x", 7)
        events += new
    assert [e["event"].rsplit(".", 1)[1] for e in events] == ["declared", "deleted", "declared"]
    assert state is not None and state.number == 7
    assert events[2]["follows"] == events[1]["id"]
    assert len({e["id"] for e in events}) == 3
    # the deletion is labelled with the incident as it last was
    assert events[1]["resource"]["prefect.resource.name"] == "Outage"


def test_labels_and_related_carry_the_state_after_the_change() -> None:
    first, state = derive(
        None, document(related_resources=["prefect.work-pool.k8s"]), "p", context(1), "x", 1
    )
    second, _ = derive(
        state, document(severity="SEV-1", tags=["db"]), "p", context(2, "Bob"), "x", 1
    )
    assert second[0]["resource"] == {
        "prefect.resource.id": "prefect-cloud.incident.x",
        "prefect.resource.name": "Outage",
        "prefect-cloud.incident.severity": "SEV-1",
        "prefect-cloud.incident.status": "active",
    }
    assert [r["prefect.resource.id"] for r in second[0]["related"]] == [
        "prefect.tag.db",
        "git.author.bob@example.invalid",
        f"git.commit.{2:040d}",
    ]
    assert first[0]["related"][0] == {
        "prefect.resource.id": "prefect.work-pool.k8s",
        "prefect.resource.role": "work-pool",
    }

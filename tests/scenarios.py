"""Scripted tracker histories for the golden tests: who changed what, when.

Times are seconds since 1970 (UTC); the same script always makes the same
commits, so the expected event streams under tests/golden/ are exact.
"""

from __future__ import annotations

from collections.abc import Callable

from .conftest import Repo

ALICE = ("Alice Adams", "alice@example.invalid")
BOB = ("Bob Brown", "bob@example.invalid")
CAROL = ("Carol Chen", "carol@example.invalid")
DAVE = ("Dave Diaz", "dave@example.invalid")
T0 = 1_795_000_000  # 2026-11-18T11:06:40Z

DB_V1 = """\
name: Orders database unreachable
severity: SEV-2
summary: Flow runs fail with connection refused.
tags: [prod]
related_resources:
  - prefect.work-pool.k8s-prod
"""


def lifecycle(repo: Repo) -> None:
    """Declare, update, comment, an invalid version, resolve, reopen, a merged branch
    that rewrites a comment and backfills an incident, deletions, a commit dated
    before its parent."""
    repo.write("incidents/db.yaml", DB_V1)
    repo.commit("declare db", ALICE, T0)

    repo.write(
        "incidents/db.yaml",
        DB_V1.replace("SEV-2", "SEV-1").replace("[prod]", "[prod, database]")
        + "  - id: prefect.deployment.nightly-etl\n    name: nightly-etl\n"
        + "comments:\n  - text: Failing over to the replica.\n",
    )
    repo.commit("raise db to SEV-1", BOB, T0 + 600)

    # Committed "before" its parent: occurred stays at the parent's time.
    repo.write(
        "incidents/db.yaml",
        (repo.path / "incidents/db.yaml").read_text()
        + "  - text: Replica promoted.\n    author: carol\n    at: 2026-11-18T08:40:00Z\n",
    )
    repo.commit("db: replica promoted", CAROL, T0 + 300)

    good = (repo.path / "incidents/db.yaml").read_text()
    repo.write("incidents/db.yaml", good + "severty: SEV-1\n")
    repo.commit("typo", ALICE, T0 + 900)

    repo.write(
        "incidents/db.yaml",
        good.replace("SEV-1", "SEV-1\nstatus: resolved") + "impact: 14 flow runs failed.\n",
    )
    repo.commit("resolve db", BOB, T0 + 1200)

    reopened = (
        (repo.path / "incidents/db.yaml").read_text().replace("status: resolved", "status: active")
    )
    repo.write("incidents/db.yaml", reopened)
    repo.commit("reopen db", ALICE, T0 + 1500)

    repo.git("checkout", "-q", "-b", "cleanup")
    repo.write(
        "incidents/db.yaml",
        reopened.replace("Failing over to the replica.", "Failing over to replica db-2."),
    )
    repo.write(
        "incidents/dns.yaml",
        "name: DNS outage\nseverity: SEV-3\nstatus: resolved\n"
        "start_time: 2026-10-02T14:05:00Z\nend_time: 2026-10-02T15:41:00Z\n",
    )
    repo.commit("cleanup: reword, backfill DNS", DAVE, T0 + 1600)
    repo.git("checkout", "-q", "main")
    repo.merge("cleanup", "Merge branch cleanup", ALICE, T0 + 1800)

    repo.write(
        "incidents/db.yaml",
        reopened.replace(
            "  - text: Replica promoted.\n    author: carol\n    at: 2026-11-18T08:40:00Z\n", ""
        ).replace("Failing over to the replica.", "Failing over to replica db-2."),
    )
    repo.commit("remove a comment", CAROL, T0 + 2000)

    (repo.path / "incidents/dns.yaml").unlink()
    repo.commit("delete dns", BOB, T0 + 2100)


def config_and_renames(repo: Repo) -> None:
    """A configured namespace and scale, a file renamed (a deletion and a declaration),
    a bad file name, a configuration change mid-history."""
    repo.write(
        "gitops-incidents.yaml",
        "namespace: acme\nseverities: [{id: P1, label: Page}, {id: P2, label: Ticket}]\n",
    )
    repo.write("incidents/queue.yaml", "name: Queue backlog\nseverity: P2\n")
    repo.write("README.md", "not tracked by the engine\n")
    repo.commit("configure, declare queue", ALICE, T0)

    repo.git("mv", "incidents/queue.yaml", "incidents/queue-backlog.yaml")
    repo.commit("rename queue", BOB, T0 + 60)

    repo.write("incidents/bad name.yaml", "name: x\nseverity: P1\n")
    repo.write("incidents/queue-backlog.yaml", "name: Queue backlog\nseverity: P1\n")
    repo.commit("escalate; a badly named file", ALICE, T0 + 120)

    repo.write("gitops-incidents.yaml", "namespace: acme\n")  # back to SEV-1..5
    repo.write("incidents/later.yaml", "name: After the scale change\nseverity: SEV-4\n")
    repo.commit("default scale", BOB, T0 + 180)


SCENARIOS: dict[str, Callable[[Repo], None]] = {
    "lifecycle": lifecycle,
    "config_and_renames": config_and_renames,
}

"""Trigger evaluation against a floor measured in the same run (issue: automations).

Target: the evaluator handles at least 50,000 events a second with 50 automations
loaded. The stream mixes the incident events history derives with Prefect
flow-run events, as JSON lines; the floor is a loop that only parses them
(`json.loads`), which any consumer of the stream pays. Prints, as medians of
alternating runs (these machines are noisy):

- parse: events/s of the floor;
- parse + evaluate: events/s of parsing and feeding every event to the evaluator;
- evaluate alone: events/s of the evaluator (the difference of the two times);
- firings, and the ratio (parse + evaluate) / parse.

Usage: python -m benchmarks.evaluator_bench [--events N] [--rounds K]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from gitops_incidents.models import Automation
from gitops_incidents.triggers import Evaluator, iso, timestamp

NS = "prefect-cloud"
T0 = 1_800_000_000.0
TARGET = 50_000


def automations() -> list[Automation]:
    """50 automations of every kind the evaluator knows, each with its own filter, as in
    a real tracker: most events interest several of them, few make one fire."""
    specs: list[dict[str, Any]] = []
    incident = {"prefect.resource.id": f"{NS}.incident.*"}
    for n in range(10):
        tag = {"prefect.resource.id": f"prefect.tag.t{n}", "prefect.resource.role": "tag"}
        specs.append(
            {
                "match": {**incident, f"{NS}.incident.severity": f"SEV-{n % 5 + 1}"},
                "match_related": tag,
                "expect": [f"{NS}.incident.declared"],
                "posture": "Reactive",
            }
        )
        specs.append(
            {
                "match": {**incident, f"{NS}.incident.severity": ["SEV-1", "SEV-2"]},
                "match_related": [{"prefect.resource.role": "work-pool"}, tag],
                "expect": [f"{NS}.incident.updated.*"],
                "for_each": ["prefect.resource.id"],
                "posture": "Reactive",
                "within": 60 * (n + 1),
            }
        )
        specs.append(
            {
                "match": incident,
                "match_related": tag,
                "after": [f"{NS}.incident.declared"],
                "expect": [f"{NS}.incident.comment.*", f"{NS}.incident.resolved"],
                "for_each": ["prefect.resource.id"],
                "posture": "Proactive",
                "within": 1800,
            }
        )
        specs.append(
            {
                "match": {"prefect.resource.id": "prefect.flow-run.*"},
                "match_related": {"prefect.resource.id": f"prefect.deployment.d{n}"},
                "expect": ["prefect.flow-run.Failed", "prefect.flow-run.Crashed"],
                "for_each": ["related:deployment:prefect.resource.id"],
                "posture": "Reactive",
                "threshold": 3,
                "within": 3600,
            }
        )
        specs.append(
            {
                "type": "sequence",
                "within": 3600,
                "triggers": [
                    {
                        "match": incident,
                        "match_related": tag,
                        "expect": [f"{NS}.incident.{name}"],
                        "posture": "Reactive",
                    }
                    for name in ("declared", "resolved")
                ],
            }
        )
    return [
        Automation.model_validate(
            {"name": f"a{i}", "trigger": spec, "actions": [{"type": "do-nothing"}]}
        )
        for i, spec in enumerate(specs)
    ]


def stream(count: int, seed: int = 7) -> list[str]:
    """Prefect's own events (flow runs, 4 in 5) and the tracker's incident events."""
    rng = random.Random(seed)
    lines = []
    names = ["declared", "updated.severity", "updated.summary", "comment.added", "resolved"]
    states = ["Pending", "Running", "Completed", "Completed", "Running", "Pending", "Failed"]
    for n in range(count):
        at = iso(T0 + n * 0.5)
        event: dict[str, Any]
        if n % 5 == 0:
            number = rng.randrange(500)
            event = {
                "id": f"e{n}",
                "occurred": at,
                "event": f"{NS}.incident.{rng.choice(names)}",
                "resource": {
                    "prefect.resource.id": f"{NS}.incident.i{number}",
                    "prefect.resource.name": f"Incident {number}",
                    f"{NS}.incident.severity": f"SEV-{rng.randint(1, 5)}",
                    f"{NS}.incident.status": "active",
                },
                "related": [
                    {
                        "prefect.resource.id": "prefect.work-pool.k8s",
                        "prefect.resource.role": "work-pool",
                    },
                    {
                        "prefect.resource.id": f"prefect.tag.t{number % 20}",
                        "prefect.resource.role": "tag",
                    },
                    {
                        "prefect.resource.id": "git.author.a@example.com",
                        "prefect.resource.role": "actor",
                    },
                ],
                "payload": {"field": "severity", "old": "SEV-2", "new": "SEV-1"},
            }
        else:
            event = {
                "id": f"e{n}",
                "occurred": at,
                "event": f"prefect.flow-run.{rng.choice(states)}",
                "resource": {"prefect.resource.id": f"prefect.flow-run.r{n // 4}"},
                "related": [
                    {
                        "prefect.resource.id": f"prefect.deployment.d{rng.randrange(40)}",
                        "prefect.resource.role": "deployment",
                    },
                    {
                        "prefect.resource.id": "prefect.work-pool.k8s",
                        "prefect.resource.role": "work-pool",
                    },
                ],
                "payload": {},
            }
        lines.append(json.dumps(event))
    return lines


def parse_only(lines: list[str]) -> float:
    loads = json.loads
    started = time.perf_counter()
    for line in lines:
        loads(line)
    return time.perf_counter() - started


def parse_and_evaluate(lines: list[str], loaded: list[Automation]) -> tuple[float, int]:
    evaluator = Evaluator()
    for index, automation in enumerate(loaded):
        evaluator.load(f"a{index}", automation, T0 - 1)
    loads, feed, advance = json.loads, evaluator.feed, evaluator.advance
    fired = 0
    started = time.perf_counter()
    for line in lines:
        # As history is walked: the clock (proactive runs, sweeps) to the event, then it.
        event = loads(line)
        fired += len(advance(timestamp(event["occurred"]))) + len(feed(event))
    return time.perf_counter() - started, fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    loaded = automations()
    lines = stream(args.events)
    floor, total, firings = [], [], 0
    for _ in range(args.rounds):
        floor.append(parse_only(lines))
        seconds, firings = parse_and_evaluate(lines, loaded)
        total.append(seconds)
    n = args.events
    median_floor, median_total = statistics.median(floor), statistics.median(total)
    alone = n / max(median_total - median_floor, 1e-9)
    print(f"{n:,} events, {len(loaded)} automations, {firings:,} firings a round")
    print(f"parse:            {n / median_floor:12,.0f} events/s (the floor)")
    print(f"parse + evaluate: {n / median_total:12,.0f} events/s")
    print(
        f"evaluate alone:   {alone:12,.0f} events/s  target >= {TARGET:,}  "
        f"{'ok' if alone >= TARGET else 'MISSED'}"
    )
    ratios = [t / f for t, f in zip(total, floor, strict=True)]
    print(f"ratio (parse + evaluate) / parse: median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()

"""From a commit to a paused work pool, against Prefect's own latency (issue: Prefect for real).

One real Prefect server (Prefect's app, in this process, on 127.0.0.1, SQLite). Each
round measures, on the same server, as wall time:

- ours: a SEV-1 incident linking a work pool is committed, `gitops-incidents apply`
  runs as a process (as CI or the daemon would run it), until Prefect shows the pool
  paused (the tracker's pause-work-pool automation);
- the floor, Prefect's own: an event is POSTed to Prefect's events API, until a
  Prefect automation (the seed's trigger, a pause-work-pool action) has paused
  another pool.

Prints the medians and the ratio ours / floor.

Usage: python -m benchmarks.prefect_bench [--rounds K]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.prefect_server import running

AUTOMATION = """\
name: Pause linked work pools when a SEV-1 is declared
trigger:
  match: {prefect.resource.id: prefect-cloud.incident.*, prefect-cloud.incident.severity: SEV-1}
  match_related: {prefect.resource.role: work-pool}
  expect: [prefect-cloud.incident.declared]
  posture: Reactive
actions:
  - {type: pause-work-pool, source: inferred}
"""
ENV = {
    "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **ENV}
    )


def paused(api: httpx.Client, pool: str, timeout: float = 60) -> float:
    """Seconds until the pool shows paused (polling every 10 ms)."""
    started = time.perf_counter()
    while not api.get(f"/work_pools/{pool}").json()["is_paused"]:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(pool)
        time.sleep(0.01)
    return time.perf_counter() - started


def resume(api: httpx.Client, pool: str) -> None:
    api.patch(f"/work_pools/{pool}", json={"is_paused": False}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="prefect-bench-"))
    with running(scratch / "prefect") as url:
        bench(url, scratch, args.rounds)


def bench(url: str, scratch: Path, rounds: int) -> None:
    api = httpx.Client(base_url=url, timeout=30)
    ours_pool, floor_pool = "bench-ours", "bench-floor"
    for pool in (ours_pool, floor_pool):
        api.post("/work_pools/", json={"name": pool, "type": "process"}).raise_for_status()
    floor_id = api.get(f"/work_pools/{floor_pool}").json()["id"]
    api.post(
        "/automations/",
        json={
            "name": "the seed's trigger, inside Prefect",
            "trigger": {"type": "event", "match": {"prefect.resource.id": "bench.incident.*"},
                        "expect": ["bench.incident.declared"], "posture": "Reactive",
                        "threshold": 1, "within": 0},
            "actions": [
                {"type": "pause-work-pool", "source": "selected", "work_pool_id": floor_id}
            ],
        },
    ).raise_for_status()  # fmt: skip
    repo = scratch / "tracker"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "automations").mkdir()
    (repo / "incidents").mkdir()
    (repo / "automations" / "pause.yaml").write_text(AUTOMATION)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    command = [sys.executable, "-m", "gitops_incidents", "--repo", str(repo), "apply"]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, **ENV})
    time.sleep(2)  # the Prefect automation reaches its trigger cache
    ours: list[float] = []
    floor: list[float] = []
    for n in range(rounds):
        resume(api, ours_pool)
        (repo / "incidents" / f"i{n}.yaml").write_text(
            f"name: Database down {n}\nseverity: SEV-1\n"
            f"related_resources: [prefect.work-pool.{ours_pool}]\n"
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"declare {n}")
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, **ENV})
        ours.append(time.perf_counter() - started + paused(api, ours_pool))

        resume(api, floor_pool)
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "occurred": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "event": "bench.incident.declared",
            "resource": {"prefect.resource.id": f"bench.incident.i{n}"},
        }
        started = time.perf_counter()
        api.post("/events", json=[event]).raise_for_status()
        floor.append(time.perf_counter() - started + paused(api, floor_pool))
        print(
            f"round {n + 1}: ours {ours[-1]:.3f} s, Prefect's own {floor[-1]:.3f} s",
            file=sys.stderr,
        )
    ratios = [o / f for o, f in zip(ours, floor, strict=True)]
    print(f"commit -> apply -> pool paused: median {statistics.median(ours):.3f} s")
    print(f"Prefect's event -> automation -> pool paused: median {statistics.median(floor):.3f} s")
    print(f"ratio (median of per-round ratios): {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()

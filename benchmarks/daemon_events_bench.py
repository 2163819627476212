"""Prefect's events through the daemon, against Prefect's own stream (issue: the daemon).

One real Prefect server (Prefect's app, in this process, on 127.0.0.1, SQLite), with
its own consumers of the events topic off (its event persister and triggers: on SQLite
they fall behind at these rates, and Prefect's in-memory broker then drops messages
for every subscriber). Events are POSTed to its events API at --rate a second, in
batches of 200, while two processes follow its live stream:

- ours: `gitops-incidents watch --prefect-events` on a tracker whose automation
  matches every event (a reactive trigger counting them), until its /metrics count
  all of them as evaluated;
- the floor: a bare subscriber (prefect-client's `get_events_subscriber`) that only
  counts them.

Prints events per second for both (from the first POST to the last event taken), the
ratio, and the engine's state commits per second meanwhile. Targets: ours >= 1,000
events/s; a few commits a second, not one per event.

Usage: python -m benchmarks.daemon_events_bench [--events N] [--rate R]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import httpx

from benchmarks.synthetic import git
from tests.prefect_server import free_port, running

AUTOMATION = """\
name: Count the ticks
trigger:
  match: {prefect.resource.id: bench.*}
  expect: [bench.tick]
  posture: Reactive
  threshold: 1000000
  within: 3600
actions:
  - type: do-nothing
"""
FLOOR = """
import asyncio, sys, time
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter

async def main():
    only = EventFilter(event=EventNameFilter(prefix=["bench."]))
    async with get_events_subscriber(filter=only) as subscriber:
        print("ready", flush=True)
        count, last = 0, 0.0
        while True:
            try:
                await asyncio.wait_for(anext(subscriber), timeout=5 if count else None)
            except TimeoutError:
                print(count, last, flush=True)  # quiet for 5 s: all that will come
                return
            count, last = count + 1, time.time()

asyncio.run(main())
"""


def tracker(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "automations").mkdir()
    (path / "automations" / "count.yaml").write_text(AUTOMATION)
    (path / "incidents").mkdir()
    (path / "incidents" / "none.yaml").write_text("name: Nothing yet\nseverity: SEV-5\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "count the ticks")
    return path


def evaluated(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("gitops_incidents_prefect_events_total "):
                return int(line.split()[1])
    return 0


def follow_count(port: int, seen: list[tuple[int, float]]) -> None:
    """The daemon's count of evaluated events, recorded when it moves, until it has
    been still for 5 s (all that will come)."""
    while seen[-1][0] == 0 or time.time() < seen[-1][1] + 5:
        count = evaluated(port)
        if count != seen[-1][0]:
            seen.append((count, time.time()))
        time.sleep(0.01)


def engine_commits(root: Path) -> int:
    return int(git(root, "rev-list", "--count", "refs/gitops-incidents/main").strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6_000)
    parser.add_argument("--rate", type=float, default=1_500.0)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="events-bench-"))
    os.environ["PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] = "false"
    with running(scratch / "prefect") as url:
        bench(url, tracker(scratch / "tracker"), args.events, args.rate)


def bench(url: str, root: Path, wanted: int, rate: float) -> None:
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(root), "watch",
         "--prefect-events", "--health", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    floor = subprocess.Popen([sys.executable, "-c", FLOOR], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stderr is not None and floor.stdout is not None
        while "following Prefect's events" not in daemon.stderr.readline():
            assert daemon.poll() is None, "the daemon stopped"
        threading.Thread(target=daemon.stderr.read, daemon=True).start()  # never full
        assert floor.stdout.readline().strip() == "ready"
        time.sleep(1)  # both websockets open
        print("both follow the stream; posting", file=sys.stderr)
        api = httpx.Client(base_url=url, timeout=60)
        commits_before = engine_commits(root)
        seen = [(0, 0.0)]  # (count, when) each time the daemon's count moved
        watching = threading.Thread(target=follow_count, args=(port, seen), daemon=True)
        watching.start()
        started = time.time()
        for first in range(0, wanted, 200):
            batch = [
                {
                    "id": str(uuid.uuid4()),
                    "occurred": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "event": "bench.tick",
                    "resource": {"prefect.resource.id": f"bench.r{n % 50}"},
                }
                for n in range(first, min(first + 200, wanted))
            ]
            api.post("/events", json=batch).raise_for_status()
            time.sleep(max(started + (first + 200) / rate - time.time(), 0.0))
        posted = time.time()
        floor_count, floor_done = floor.stdout.readline().split()
        watching.join()
        ours_count, ours_done = seen[-1]
        commits = engine_commits(root) - commits_before
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        floor.kill()
    took = posted - started
    prefect = int(floor_count) / (float(floor_done) - started)
    ours = ours_count / (ours_done - started)
    print(f"{wanted} events posted in {took:.2f} s ({wanted / took:,.0f}/s)")
    print(f"Prefect's stream, a bare subscriber: {floor_count} events, {prefect:,.0f}/s")
    print(f"through the daemon's evaluation: {ours_count} events, {ours:,.0f}/s "
          f"(ratio {ours / prefect:.2f})")  # fmt: skip
    print(
        f"engine state commits: {commits} in {ours_done - started:.1f} s "
        f"({commits / (ours_done - started):.1f} a second, {ours_count / max(commits, 1):.0f} "
        "events each)"
    )


if __name__ == "__main__":
    main()

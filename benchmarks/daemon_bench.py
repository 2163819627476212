"""The daemon against floors measured in the same run (issue: the daemon).

`gitops-incidents watch` runs as a process on a fresh clone of a synthetic history, its
webhook received by a real HTTP server on 127.0.0.1. Beside it, the floor: a process
that watches the same refs with watchdog and POSTs the new commit id, the same
notification without the engine. Each round commits one new incident (`git commit`, a
process) and times both from the commit's start to their request's arrival.

Prints, on a 600- and a 5,000-commit history of the same 500 incidents:

- latency, commit -> webhook: p50 and p95;     targets p50 <= 300 ms, p95 <= 1 s, and
  the two histories' medians within 10 %;
- idle: processor time over --idle seconds (60) with nothing happening, as a share of
  one core, its git processes included;       target < 1 %;
- memory: the daemon's resident memory after 1,000 commits / after 100;  target <= 1.10.

Usage: python -m benchmarks.daemon_bench [--rounds K] [--idle S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.synthetic import generate, git
from tests.prefect_server import free_port
from tests.webhook_server import Receiver, serve

CONFIG = """\
bot: {name: gitops-incidents, email: bot@example.invalid}
webhooks:
  pager: {url_env: PAGER_URL}
"""
AUTOMATION = """\
name: Page on a new incident
trigger:
  match: {prefect.resource.id: prefect-cloud.incident.*}
  expect: [prefect-cloud.incident.declared]
  posture: Reactive
actions:
  - type: call-webhook
    target: pager
    payload: '{{ event.resource["prefect.resource.id"] }}'
"""
# The floor: the same watch on the refs and the same POST, without the engine.
FLOOR = """
import sys, threading, urllib.request
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

git_dir, url = sys.argv[1:]
wake = threading.Event()

class Moved(FileSystemEventHandler):
    def on_any_event(self, event):
        if event.event_type in ("created", "modified", "moved", "deleted", "closed"):
            wake.set()

def head():
    with open(git_dir + "/refs/heads/main") as ref:
        return ref.read().strip()

observer = Observer()
observer.schedule(Moved(), git_dir + "/refs", recursive=True)
observer.start()
seen = head()
print("ready", flush=True)
while True:
    wake.wait()
    wake.clear()
    now = head()
    if now != seen:
        seen = now
        urllib.request.urlopen(url, data=now.encode()).read()
"""
INCIDENTS = 500


def fresh_clone(scratch: Path, commits: int) -> Path:
    """A synthetic history with the tracker's configuration on top, cloned as CI would."""
    # The same 500 incidents in both: what is compared is the length of history (as in
    # history_bench's incremental figure); a run's cost follows the incidents.
    source = generate(scratch / f"source-{commits}", incidents=INCIDENTS, commits=commits, seed=1)
    (source / "gitops-incidents.yaml").write_text(CONFIG)
    (source / "automations").mkdir()
    (source / "automations" / "page.yaml").write_text(AUTOMATION)
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "page on a new incident")
    clone = scratch / f"clone-{commits}"
    git(scratch, "clone", "-q", str(source), str(clone))
    return clone


class Daemon:
    def __init__(self, root: Path, receiver: Receiver, port: int) -> None:
        self.root, self.port = root, port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gitops_incidents", "--repo", str(root), "watch",
             "--health", f"127.0.0.1:{port}"],
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PAGER_URL": receiver.url("/pager")},
        )  # fmt: skip
        assert self.process.stderr is not None
        while "evaluated" not in self.process.stderr.readline():
            assert self.process.poll() is None, "the daemon stopped"
        # Its log, read on so that the pipe never fills.
        threading.Thread(target=self.process.stderr.read, daemon=True).start()

    def caught_up(self) -> None:
        head = git(self.root, "rev-parse", "HEAD").strip()
        while True:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=5) as answer:
                if f'"position": "{head}"' in answer.read().decode():
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def processor(pid: int) -> float:
    """Seconds of processor used by the process and its children it waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(map(int, fields[11:15])) / os.sysconf("SC_CLK_TCK")


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def declare(root: Path, n: int, receiver: Receiver) -> tuple[float, float]:
    """Commit a new incident; the seconds until the daemon's and the floor's requests."""
    (root / "incidents" / f"bench-{n}.yaml").write_text(f"name: Bench {n}\nseverity: SEV-2\n")
    git(root, "add", "-A")
    pages, floors = len(receiver.to("/pager")), len(receiver.to("/floor"))
    started = time.perf_counter()
    git(root, "commit", "-q", "-m", f"declare bench-{n}")
    while len(receiver.to("/pager")) == pages or len(receiver.to("/floor")) == floors:
        time.sleep(0.001)
    assert receiver.to("/pager")[-1].body.decode().endswith(f"bench-{n}")
    return receiver.to("/pager")[-1].at - started, receiver.to("/floor")[-1].at - started


def work(root: Path, n: int) -> None:
    """Commit `n` of a day's work: every tenth declares an incident, the others comment
    on the last one declared."""
    path = root / "incidents" / f"work-{n // 10}.yaml"
    if n % 10 == 0:
        path.write_text(f"name: Work {n}\nseverity: SEV-3\ncomments:\n")
    with path.open("a") as file:
        file.write(f"  - {{text: 'Still looking ({n})', author: bench}}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"work {n}")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def measure(scratch: Path, commits: int, receiver: Receiver, rounds: int, idle: float) -> float:
    root = fresh_clone(scratch, commits)
    floor = subprocess.Popen(
        [sys.executable, "-c", FLOOR, str(root / ".git"), receiver.url("/floor")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert floor.stdout is not None and floor.stdout.readline().strip() == "ready"
    daemon = Daemon(root, receiver, free_port())
    try:
        for n in range(3):  # warm-up: the first firings, the caches
            declare(root, 10_000 + n, receiver)
        timed = [declare(root, n, receiver) for n in range(rounds)]
        ours, floors = [t[0] for t in timed], [t[1] for t in timed]
        print(
            f"{commits} commits: commit -> webhook p50 {statistics.median(ours) * 1000:.0f} ms, "
            f"p95 {p95(ours) * 1000:.0f} ms; the floor (watchdog + POST) p50 "
            f"{statistics.median(floors) * 1000:.0f} ms; ratio of medians "
            f"{statistics.median(ours) / statistics.median(floors):.1f}"
        )
        if idle:
            daemon.caught_up()
            before, floor_before = processor(daemon.process.pid), processor(floor.pid)
            time.sleep(idle)
            spent = processor(daemon.process.pid) - before
            floor_spent = processor(floor.pid) - floor_before
            print(
                f"{commits} commits: idle {spent / idle * 100:.2f} % of a core over {idle:.0f} s "
                f"(the floor: {floor_spent / idle * 100:.2f} %)"
            )
            for n in range(3 + rounds, 100):
                work(root, n)
            daemon.caught_up()
            after_100 = resident(daemon.process.pid)
            for n in range(100, 1000):
                work(root, n)
            daemon.caught_up()
            after_1000 = resident(daemon.process.pid)
            print(
                f"{commits} commits: memory after 100 commits {after_100 / 2**20:.1f} MiB, after "
                f"1,000 {after_1000 / 2**20:.1f} MiB; ratio {after_1000 / after_100:.3f}"
            )
        return statistics.median(ours)
    finally:
        daemon.stop()
        floor.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="daemon-bench-") as scratch:
        for receiver in serve():
            small = measure(Path(scratch), 600, receiver, args.rounds, args.idle)
            large = measure(Path(scratch), 5000, receiver, args.rounds, 0.0)
            print(f"median latency, 5,000 commits / 600: {large / small:.3f}")


if __name__ == "__main__":
    main()

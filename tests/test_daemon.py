"""`watch`, the daemon, as a real process on a real repository, sending to a real HTTP
receiver: commits, proactive deadlines, signals, the polling fallback, health."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Repo
from tests.prefect_server import free_port
from tests.webhook_server import Receiver, serve

NS = "prefect-cloud"
CONFIG = "bot: {name: gitops-incidents, email: bot@example.invalid}\nwebhooks:\n  pager: {url_env: PAGER_URL}\n"
ON_DECLARED = f"""\
name: Page on a new incident
trigger:
  match: {{prefect.resource.id: {NS}.incident.*}}
  expect: [{NS}.incident.declared]
  posture: Reactive
actions:
  - type: call-webhook
    target: pager
    payload: '{{{{ event.resource["prefect.resource.id"] }}}}'
"""
NO_COMMENT = f"""\
name: No comment within 10 seconds
trigger:
  match: {{prefect.resource.id: {NS}.incident.*}}
  after: [{NS}.incident.declared]
  expect: [{NS}.incident.comment.added]
  for_each: [prefect.resource.id]
  posture: Proactive
  within: 10
actions:
  - type: call-webhook
    url: PLACEHOLDER
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def tracker(repo: Repo, receiver: Receiver) -> Repo:
    repo.write("gitops-incidents.yaml", CONFIG)
    repo.write("automations/page.yaml", ON_DECLARED)
    repo.write("incidents/old.yaml", "name: Before the daemon\nseverity: SEV-3\n")
    repo.commit("start")
    return repo


RUNNING: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_daemon_left() -> Iterator[None]:
    yield
    while RUNNING:
        process = RUNNING.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class Watch:
    """A `watch` process, its log lines as they come; started, it has run once."""

    def __init__(
        self, repo: Repo, receiver: Receiver, *args: str, env: dict[str, str] | None = None
    ):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gitops_incidents", "--repo", str(repo.path), "watch", *args],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PAGER_URL": receiver.url("/pager"), **(env or {})},
        )
        RUNNING.append(self.process)
        self.lines: list[str] = []
        self.wait_for("evaluated")  # the first run, at HEAD: later commits are acted on

    def wait_for(self, text: str, timeout: float = 20) -> str:
        assert self.process.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in the log:\n{''.join(self.lines)}")

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, rest = self.process.communicate(timeout=30)
        self.lines.append(rest)
        return self.process.returncode, "".join(self.lines)


def assert_status_clean(repo: Repo) -> None:
    """`status` finds every firing done: nothing pending, failed or unknown."""
    status = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(repo.path), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 0, status.stderr


def eventually(check: Callable[[], bool], timeout: float = 10) -> float:
    """Seconds until `check` holds (polled every 10 ms)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_commit_makes_the_webhook_arrive_and_sigterm_exits_0(
    tracker: Repo, receiver: Receiver
) -> None:
    watch = Watch(tracker, receiver, "--interval", "30")  # the watcher, not the poll
    assert any("watching the branch" in line for line in watch.lines)
    tracker.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    tracker.commit("declare")
    latency = eventually(lambda: len(receiver.to("/pager")) == 1)
    assert receiver.to("/pager")[0].body == f"{NS}.incident.db".encode()
    assert latency < 2.0
    code, log = watch.stop()
    assert code == 0
    assert "fired automation=Page on a new incident" in log
    assert "done automation=Page on a new incident action=call-webhook" in log
    assert log.rstrip().endswith("info stopped")


def test_a_proactive_deadline_fires_within_a_second_of_its_time(
    tracker: Repo, receiver: Receiver
) -> None:
    tracker.write(
        "automations/quiet.yaml", NO_COMMENT.replace("PLACEHOLDER", receiver.url("/quiet"))
    )
    tracker.commit("the automation")
    watch = Watch(tracker, receiver, "--interval", "30")
    tracker.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    tracker.commit("declare")
    committed = int(tracker.git("log", "-1", "--format=%ct").strip())
    eventually(lambda: len(receiver.to("/quiet")) == 1, timeout=20)
    late = time.time() - (committed + 10)
    assert -0.1 < late < 1.0, late  # the commit's second, plus the window
    code, _ = watch.stop()
    assert code == 0


def test_the_poll_takes_over_when_the_directory_cannot_be_watched(
    tracker: Repo, receiver: Receiver
) -> None:
    watch = Watch(tracker, receiver, "--interval", "0.3", env={"GITOPS_INCIDENTS_NO_OBSERVER": "1"})
    (line,) = [line for line in watch.lines if "polling the branch instead" in line]
    assert " warning " in line and "every=0.3s" in line
    tracker.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    tracker.commit("declare")
    assert eventually(lambda: len(receiver.to("/pager")) == 1) < 1.5
    assert watch.stop()[0] == 0


def test_health_and_metrics(tracker: Repo, receiver: Receiver) -> None:
    port = free_port()
    watch = Watch(tracker, receiver, "--health", f"127.0.0.1:{port}", "--log-format", "json")
    first = [json.loads(line) for line in watch.lines]
    assert [f["msg"] for f in first] == [
        "serving /healthz and /metrics",
        "watching the branch",
        "evaluated",
    ]
    tracker.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    head = tracker.commit("declare")
    eventually(lambda: len(receiver.to("/pager")) == 1)

    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return str(answer.read().decode())

    eventually(lambda: json.loads(get("/healthz"))["position"] == head)
    health = json.loads(get("/healthz"))
    assert health == {
        "status": "ok",
        "position": head,
        "head": head,
        "lag_seconds": 0.0,
        "last_error": None,
    }
    metrics = get("/metrics")
    assert 'gitops_incidents_actions_total{outcome="done"} 1' in metrics
    assert "gitops_incidents_firings_total 1" in metrics
    assert "gitops_incidents_events_evaluated_total 1" in metrics
    assert watch.stop()[0] == 0


def test_a_health_address_that_is_taken_is_a_usage_error(tracker: Repo) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gitops_incidents",
                "--repo",
                str(tracker.path),
                "watch",
                "--health",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2
    assert f"--health 127.0.0.1:{port}: Address already in use" in done.stderr


def test_an_idle_daemon_sleeps(tracker: Repo, receiver: Receiver) -> None:
    """Idle, with the branch still, it uses next to no processor: no loop that wakes
    itself (its own reads of the refs are not changes), no busy poll."""
    watch = Watch(tracker, receiver, "--interval", "1")
    ticks = os.sysconf("SC_CLK_TCK")

    def used() -> float:
        fields = Path(f"/proc/{watch.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(map(int, fields[11:15])) / ticks  # its time and its git processes'

    before = used()
    time.sleep(3)
    spent = used() - before
    print(f"idle: {spent:.2f} s of processor in 3 s")
    assert spent < 0.3  # a loop that wakes itself uses all of it
    assert watch.stop()[0] == 0


def test_sigterm_in_a_burst_loses_nothing_and_duplicates_nothing(
    tracker: Repo, receiver: Receiver
) -> None:
    watch = Watch(tracker, receiver, "--interval", "0.5")
    for n in range(12):
        tracker.write(f"incidents/burst-{n}.yaml", f"name: Burst {n}\nseverity: SEV-3\n")
        tracker.commit(f"burst {n}")
        if n == 4:
            eventually(lambda: len(receiver.to("/pager")) >= 1)
            assert watch.stop()[0] == 0  # in the middle of the burst
    again = Watch(tracker, receiver, "--interval", "0.5")
    eventually(lambda: len(receiver.to("/pager")) >= 12, timeout=30)
    assert again.stop()[0] == 0
    deliveries = receiver.deliveries("/pager")
    assert len(deliveries) == 12 and set(deliveries.values()) == {1}
    bodies = sorted(r.body.decode() for r in receiver.to("/pager"))
    assert bodies == sorted(f"{NS}.incident.burst-{n}" for n in range(12))
    assert_status_clean(tracker)


def test_kill_9_at_random_moments_then_a_restart_runs_every_action_once(
    tracker: Repo, receiver: Receiver
) -> None:
    """30 daemons killed with SIGKILL at random moments of a stream of commits, then
    one left running: every firing's webhook arrives, and an idempotent receiver (one
    that acts once per Idempotency-Key) acts on each once."""
    rng = random.Random(9)
    declared: list[str] = []
    for trial in range(30):
        watch = Watch(tracker, receiver, "--interval", "0.2")
        for _ in range(rng.randint(1, 3)):
            name = f"k{len(declared)}"
            tracker.write(f"incidents/{name}.yaml", f"name: Killed {trial}\nseverity: SEV-3\n")
            tracker.commit(f"declare {name}")
            declared.append(name)
        time.sleep(rng.uniform(0, 0.4))
        watch.process.kill()
        watch.process.wait()
    last = Watch(tracker, receiver, "--interval", "0.2")
    eventually(lambda: len(receiver.deliveries("/pager")) == len(declared), timeout=60)
    assert last.stop()[0] == 0
    bodies = {r.body.decode() for r in receiver.to("/pager")}
    assert bodies == {f"{NS}.incident.{name}" for name in declared}
    sent = len(receiver.to("/pager"))
    print(f"kill -9: {len(declared)} firings, {sent} requests, {len(declared)} keys")
    assert_status_clean(tracker)


def test_two_daemons_on_two_clones_of_one_remote_act_once_and_lose_no_commit(
    tracker: Repo, receiver: Receiver, tmp_path: Path
) -> None:
    """Two daemons following one bare remote (`--remote origin`), while a person pushes
    200 commits from a third clone at random intervals: every incident paged once and
    commented on once, every human commit kept, both logs clean."""
    tracker.write(
        "automations/page.yaml",
        ON_DECLARED + "  - type: comment-on-incident\n    source: inferred\n    text: Paged.\n",
    )
    tracker.commit("page and comment")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(tracker.path), str(origin)], check=True)
    host_a, host_b, person = (Repo.clone(origin, tmp_path / n) for n in ("a", "b", "person"))
    daemons = [Watch(host, receiver, "--remote", "origin", "--interval", "0.2")
               for host in (host_a, host_b)]  # fmt: skip
    rng = random.Random(13)
    declared, notes = [], []
    for n in range(200):
        if n % 4 == 0:
            declared.append(f"r{n}")
            person.write(f"incidents/r{n}.yaml", f"name: Remote {n}\nseverity: SEV-2\n")
        else:
            notes.append(f"note {n}")
            person.write("notes.txt", "\n".join(notes) + "\n")
        person.commit(f"person {n}")
        while subprocess.run(["git", "push", "-q", "origin", "main"], cwd=person.path,
                             capture_output=True, check=False).returncode:  # fmt: skip
            person.git("pull", "-q", "--rebase", "origin", "main")  # a bot pushed first
        time.sleep(rng.uniform(0, 0.05))

    def log(*args: str) -> str:
        return subprocess.run(["git", "--git-dir", str(origin), "log", *args, "main"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip

    eventually(lambda: len(receiver.to("/pager")) >= len(declared), timeout=120)
    eventually(lambda: log("--format=%(trailers:key=Gitops-Incidents-Action,valueonly)")
               .count("/") >= 2 * len(declared), timeout=120)  # fmt: skip
    logs = [daemon.stop() for daemon in daemons]
    assert [code for code, _ in logs] == [0, 0]
    for _, text in logs:
        assert " error " not in text and " warning " not in text, text
    deliveries = receiver.deliveries("/pager")
    assert len(receiver.to("/pager")) == len(declared) == len(deliveries)
    assert set(deliveries.values()) == {1}
    keys = log("--format=%(trailers:key=Gitops-Incidents-Action,valueonly)").split()
    assert len(keys) == len(set(keys)) == len(declared)  # one comment per incident
    subjects = log("--format=%s").splitlines()
    assert {f"person {n}" for n in range(200)} <= set(subjects)
    final = subprocess.run(["git", "--git-dir", str(origin), "show", "main:notes.txt"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert final.splitlines() == notes
    for name in declared:
        incident = subprocess.run(
            ["git", "--git-dir", str(origin), "show", f"main:incidents/{name}.yaml"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert incident.count("Paged.") == 1, incident
    checker = Repo.clone(origin, tmp_path / "checker")
    checker.git("fetch", "-q", "origin", "refs/gitops-incidents/*:refs/gitops-incidents/*")
    assert_status_clean(checker)


def test_a_remote_that_is_down_is_said_once_and_followed_again_when_back(
    tracker: Repo, receiver: Receiver, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(tracker.path), str(origin)], check=True)
    host, person = Repo.clone(origin, tmp_path / "host"), Repo.clone(origin, tmp_path / "person")
    watch = Watch(host, receiver, "--remote", "origin", "--interval", "0.2")
    origin.rename(tmp_path / "away.git")  # the remote's host is down
    line = watch.wait_for(" error remote ")
    assert "remote=origin" in line and "git fetch origin main failed" in line
    time.sleep(1)  # five polls more, said once
    (tmp_path / "away.git").rename(origin)
    watch.wait_for("remote in sync again")
    person.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    person.commit("declare")
    person.git("push", "-q", "origin", "main")
    eventually(lambda: len(receiver.to("/pager")) == 1)
    code, log = watch.stop()
    assert code == 0 and log.count(" error ") == 1, log


def test_build_rebuilds_the_site_after_the_branch_moves(
    tracker: Repo, receiver: Receiver, tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "site", tracker.path / "site", ignore=shutil.ignore_patterns("build"))
    tracker.commit("the site")
    out = tmp_path / "public"
    watch = Watch(tracker, receiver, "--build", str(out), "--log-format", "json")
    first = json.loads(watch.wait_for("site built", timeout=60))
    assert first["out"] == str(out) and "Database down" not in (out / "index.html").read_text()
    tracker.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    tracker.commit("declare")
    again = json.loads(watch.wait_for("site built", timeout=60))
    assert "Database down" in (out / "index.html").read_text()
    assert "Database down" in (out / "incidents" / "db.html").read_text()
    print(f"site built in {first['seconds']}, again in {again['seconds']}")
    code, log = watch.stop()
    assert code == 0
    assert all(json.loads(line)["level"] == "info" for line in log.splitlines() if line), log


def test_sighup_reads_the_configuration_again(tracker: Repo, receiver: Receiver) -> None:
    watch = Watch(tracker, receiver, "--interval", "0.2")
    tracker.write("gitops-incidents.yaml", CONFIG + "branch: ops\n")
    tracker.commit("follow ops")
    tracker.git("checkout", "-q", "-b", "ops")
    tracker.write("incidents/early.yaml", "name: Before the signal\nseverity: SEV-2\n")
    tracker.commit("declare on ops")
    time.sleep(1)
    assert receiver.to("/pager") == []  # main is followed until told
    watch.process.send_signal(signal.SIGHUP)
    assert "ref=refs/heads/ops" in watch.wait_for("configuration read again")
    watch.wait_for("evaluated")  # the first run on ops starts at its tip
    tracker.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    tracker.commit("declare")
    eventually(lambda: len(receiver.to("/pager")) == 1)
    assert receiver.to("/pager")[0].body == f"{NS}.incident.db".encode()
    assert watch.stop()[0] == 0

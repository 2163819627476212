"""The daemon (SPEC 10): the engine of `apply`, run whenever the branch moves, when a
proactive run falls due, and on SIGHUP; one log line per thing it did.

The branch is watched with watchdog on the git directory's refs (never `objects/`),
backed by a slow poll of the ref for what inotify cannot see (bare repositories on
network file systems, an exhausted watch limit). SIGTERM and SIGINT let the run in
flight finish and be recorded, then the daemon exits 0.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from gitops_incidents import gitcmd
from gitops_incidents.engine import Engine, Report
from gitops_incidents.events import Event
from gitops_incidents.triggers import iso, next_due

T = TypeVar("T")
# Refs move by a lock file renamed into place: changes this close together are one.
DEBOUNCE = 0.05
# A test hook, as faults.py's crash points: the observer behaves as if inotify failed.
NO_OBSERVER = "GITOPS_INCIDENTS_NO_OBSERVER"
# Prefect's events are evaluated at most this often, each batch in one write of the
# engine's state: a busy workspace makes a few commits a second, not one per event.
BATCH_GAP = 0.25


@dataclass
class Status:
    """What /healthz and /metrics show; updated by the loop, read by the HTTP thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    position: str | None = None
    head: str | None = None
    last_error: str | None = None
    runs: int = 0
    events: int = 0
    prefect_events: int = 0
    firings: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    behind_since: float | None = None  # when the branch moved past the engine's position

    def lag(self) -> float:
        return 0.0 if self.behind_since is None else time.time() - self.behind_since

    def health(self) -> dict[str, Any]:
        with self.lock:
            return {
                "status": "error" if self.last_error else "ok",
                "position": self.position,
                "head": self.head,
                "lag_seconds": round(self.lag(), 3),
                "last_error": self.last_error,
            }

    def metrics(self) -> str:
        with self.lock:
            lines = [
                "# TYPE gitops_incidents_runs_total counter",
                f"gitops_incidents_runs_total {self.runs}",
                "# TYPE gitops_incidents_events_evaluated_total counter",
                f"gitops_incidents_events_evaluated_total {self.events}",
                "# TYPE gitops_incidents_prefect_events_total counter",
                f"gitops_incidents_prefect_events_total {self.prefect_events}",
                "# TYPE gitops_incidents_firings_total counter",
                f"gitops_incidents_firings_total {self.firings}",
                "# TYPE gitops_incidents_actions_total counter",
                *(
                    f'gitops_incidents_actions_total{{outcome="{outcome}"}} {count}'
                    for outcome, count in sorted(self.actions.items())
                ),
                "# TYPE gitops_incidents_lag_seconds gauge",
                f"gitops_incidents_lag_seconds {self.lag():.3f}",
            ]
        return "\n".join(lines) + "\n"


class Log:
    """One line per thing the daemon did, on stderr: text for people, JSON for machines."""

    def __init__(self, form: str) -> None:
        self.form = form

    def __call__(self, level: str, message: str, **fields: object) -> None:
        now = iso(time.time())
        if self.form == "json":
            line = json.dumps({"time": now, "level": level, "msg": message, **fields})
        else:
            extra = "".join(f" {key}={value}" for key, value in fields.items())
            line = f"{now} {level} {message}{extra}"
        print(line, file=sys.stderr, flush=True)


class PrefectFeed:
    """Prefect's events for the loop (`--prefect-events`): a thread catches up from the
    engine's cursor, follows the live stream, and catches up again whenever the stream is
    lost; the loop takes what came. Nothing queued is lost on a stop: the cursor moves
    only with what the loop evaluated, and a restart reads again from it."""

    def __init__(self, engine: Engine, wake: threading.Event, log: Log, retry: float) -> None:
        self.engine, self.wake, self.log, self.retry = engine, wake, log, retry
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._queued: list[Event] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="prefect-events")

    def start(self) -> None:
        self.engine.prefect_since()  # the first time, the cursor is set here: in the loop
        self._thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=5)

    def pending(self) -> bool:
        with self._lock:
            return bool(self._queued)

    def take(self) -> list[Event]:
        with self._lock:
            taken, self._queued = self._queued, []
        return taken

    def requeue(self, events: list[Event]) -> None:
        with self._lock:
            self._queued[:0] = events

    def _put(self, events: list[Event]) -> None:
        with self._lock:
            self._queued.extend(events)
        self.wake.set()

    def _run(self) -> None:
        from gitops_incidents.actions import ActionFailed
        from gitops_incidents.prefect import events as bridge

        problem = None
        while not self.stopped.is_set():
            try:
                since = self.engine.prefect_since()
                if since is not None:
                    self._put(list(bridge.read(since, time.time())))
                if problem is not None:
                    self.log("info", "following Prefect's events again")
                    problem = None
                else:
                    self.log("info", "following Prefect's events")
                bridge.follow(self._put, batch_seconds=0.05, stopped=self.stopped.is_set)
            except ActionFailed as exc:
                if str(exc) != problem:
                    self.log("error", "prefect events", detail=str(exc), retry=f"{self.retry}s")
                problem = str(exc)
            except gitcmd.GitError as exc:  # the ledger cannot be read: the loop says why
                problem = str(exc)
            self.stopped.wait(self.retry)


class Daemon:
    def __init__(
        self,
        root: Path,
        *,
        interval: float,
        log: Log,
        remote: str | None = None,
        prefect_events: bool = False,
        site: Path | None = None,
    ) -> None:
        self.root, self.interval, self.log = root, interval, log
        self.engine = Engine(root, remote)
        self.common_dir = gitcmd.git_dir(root)
        self.status = Status()
        self.wake = threading.Event()
        self.feed = PrefectFeed(self.engine, self.wake, log, interval) if prefect_events else None
        self._fed_at = 0.0  # when the loop last evaluated a batch of Prefect's events
        self.site = site  # where --build builds the site, or None
        if site is not None:  # MkDocs's warnings as the daemon's own lines
            mkdocs = logging.getLogger("mkdocs")
            mkdocs.addHandler(_Logged(log))
            mkdocs.setLevel(logging.WARNING)
            mkdocs.propagate = False
        self._built: str | None = None  # the position the site was last built at
        self.stopping = False
        self._observer: Any = None
        self._due_at: float | None = None  # the next proactive run, as of the last run
        self._position: str | None = None  # where the last run left the engine
        self._counted: int | None = None  # the events of history counted by then
        self._remote_problem: str | None = None  # what kept the remote from syncing
        self._reload = False  # SIGHUP came: the engine is made again from the configuration

    # -- what wakes it

    def watch(self) -> None:
        """Watch the refs with watchdog; on failure, say so and rely on the poll."""
        git_dir = self.common_dir  # where the refs are, for every worktree
        try:
            if os.environ.get(NO_OBSERVER):
                raise OSError("the observer is turned off")
            from watchdog import events
            from watchdog.observers import Observer

            wake = self.wake
            # Writes only: the loop's own reads of the refs open them too, and inotify
            # need not even report those (the filter is its mask).
            writes: list[type[events.FileSystemEvent]] = [
                events.FileCreatedEvent,
                events.FileModifiedEvent,
                events.FileMovedEvent,
                events.FileDeletedEvent,
                events.FileClosedEvent,
            ]

            class Moved(events.FileSystemEventHandler):
                def on_any_event(self, event: events.FileSystemEvent) -> None:
                    wake.set()

            observer = Observer()
            for path, recursive in ((git_dir, False), (git_dir / "refs", True)):  # packed-refs
                observer.schedule(Moved(), str(path), recursive=recursive, event_filter=writes)
            observer.daemon = True
            observer.start()
            self._observer = observer
            self.log("info", "watching the branch", ref=self.engine.branch_ref, via="watchdog")
        except (OSError, ImportError) as exc:
            self.log(
                "warning",
                "cannot watch the git directory; polling the branch instead",
                every=f"{self.interval}s",
                reason=str(exc),
            )
        if self.engine.remote is not None:
            self.log("info", "following a remote", remote=self.engine.remote.name)

    def signals(self) -> None:
        def stop(number: int, frame: object) -> None:
            self.stopping = True
            self.wake.set()

        def reload(number: int, frame: object) -> None:
            self._reload = True
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    # -- the loop

    def run(self) -> int:
        self.signals()
        self.watch()
        if self.feed is not None:
            self.feed.start()
        seen = None
        while not self.stopping:
            if self._reload:
                self._reconfigure()
                seen = None
            if self._synced():
                head = gitcmd.peek_ref(self.common_dir, self.engine.branch_ref)
                due = self._due_at is not None and self._due_at <= time.time()
                if (head != seen or due) and self._apply(head):
                    seen = head  # a run that failed is tried again at the next poll
                    self._build()
                if self.feed is not None and self._fed_at + BATCH_GAP <= time.monotonic():
                    self._take_prefect(self.feed)
            self._sleep()
        if self._observer is not None:
            self._observer.stop()
        if self.feed is not None:
            self.feed.stop()
        self.log("info", "stopped")
        return 0

    def _reconfigure(self) -> None:
        """SIGHUP: the engine made again from the configuration at HEAD (the branch
        followed, the automations' cache), then a run."""
        self._reload = False
        remote = self.engine.remote.name if self.engine.remote else None
        engine = self._guarded(lambda: Engine(self.root, remote))
        if engine is None:
            return  # said why: the engine as it was goes on
        self.engine = engine
        if self.feed is not None:
            self.feed.engine = engine
        self.log("info", "configuration read again", ref=engine.branch_ref)

    def _synced(self) -> bool:
        """With a remote: fetched, and the branch following it; said once when that
        fails (a remote that is down, commits it lacks) and once when it works again."""
        remote = self.engine.remote
        if remote is None:
            return True
        try:
            problem = remote.sync()
        except gitcmd.GitError as exc:
            problem = str(exc)
        before, self._remote_problem = self._remote_problem, problem
        if problem:
            with self.status.lock:
                self.status.last_error = problem
        if problem and problem != before:
            self.log("error", "remote", remote=remote.name, detail=problem)
        elif before and not problem:
            self.log("info", "remote in sync again", remote=remote.name)
        return problem is None

    def _sleep(self) -> None:
        """Until the branch moves, the next proactive run, a signal or the poll."""
        timeout = self.interval
        if self._due_at is not None:
            timeout = min(timeout, max(self._due_at - time.time(), 0.0))
        if self.feed is not None and self.feed.pending():  # the rest of the gap
            timeout = min(timeout, max(self._fed_at + BATCH_GAP - time.monotonic(), 0.0))
        if self.wake.wait(timeout):
            time.sleep(DEBOUNCE)  # a ref moves in steps: take them as one
        self.wake.clear()

    def _apply(self, head: str | None) -> bool:
        with self.status.lock:
            self.status.head = head
            if head != self.status.position and self.status.behind_since is None:
                self.status.behind_since = time.time()
        report = self._guarded(self.engine.apply)
        if report is None:
            return False
        position = self._account(report)
        with self.status.lock:
            if position == head:
                self.status.behind_since = None
        self._show(report, position)
        return True

    def _take_prefect(self, feed: PrefectFeed) -> None:
        """The Prefect events that came since the last batch, evaluated in one write."""
        events = feed.take()
        if not events:
            return
        self._fed_at = time.monotonic()
        report = Report()
        if self._guarded(lambda: self.engine.take_from_prefect(events, report)) is None:
            feed.requeue(events)  # the cursor did not move: the next batch has them
            return
        with self.status.lock:
            self.status.prefect_events += len(events)
        self.log("info", "evaluated Prefect's events", count=len(events))
        self._show(report, self._account(report))

    def _build(self) -> None:
        """With --build: the site, again if the branch moved since the last build."""
        if self.site is None or self._position is None or self._position == self._built:
            return
        from gitops_incidents.commands.build import build_site

        site, started = self.site, time.monotonic()
        if self._guarded(lambda: build_site(self.root, site)) is not None:
            self._built = self._position
            elapsed = f"{time.monotonic() - started:.2f}s"
            self.log("info", "site built", out=str(site), seconds=elapsed)

    def _guarded(self, step: Callable[[], T]) -> T | None:
        """The step's result, or None after saying why it failed (the daemon goes on)."""
        try:
            return step()
        except Exception as exc:
            with self.status.lock:
                self.status.last_error = f"{type(exc).__name__}: {exc}"
            self.log("error", "run failed", error=f"{type(exc).__name__}: {exc}")
            return None

    def _account(self, report: Report) -> str | None:
        """The run in the status and the next deadline; the engine's position."""
        _, state = self.engine.ledger.read()
        self._due_at = next_due(state.windows)
        with self.status.lock:
            self.status.runs += 1
            # The events of history evaluated: the growth of the incidents' tallies since
            # the last run (the first starts at HEAD and evaluates none).
            counted = state.evaluated
            if self._counted is not None:
                self.status.events += max(counted - self._counted, 0)
            self._counted = counted
            self.status.firings += len(report.fired)
            self.status.actions.update(o.status for o in report.outcomes)
            self.status.position = state.position
            self.status.last_error = None
        return state.position

    def _show(self, report: Report, position: str | None) -> None:
        for finding in report.findings:
            self.log("warning", "finding", detail=str(finding))
        for problem in report.problems:
            self.log("error", "problem", detail=problem)
        for firing in report.fired:
            self.log("info", "fired", automation=firing.name, state=firing.state, id=firing.id)
        for outcome in report.outcomes:
            self.log(
                "info" if outcome.status == "done" else "error",
                outcome.status,
                automation=outcome.automation,
                action=outcome.type,
                key=outcome.key,
                detail=outcome.detail,
            )
        if report.fired or report.outcomes or position != self._position:
            self.log("info", "evaluated", position=(position or "")[:12])
        self._position = position


class _Logged(logging.Handler):
    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        self.log(level, "site", detail=record.getMessage())


def serve_health(status: Status, host: str, port: int) -> ThreadingHTTPServer:
    """/healthz (JSON) and /metrics (Prometheus text), in a thread of their own."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                body, kind = json.dumps(status.health()).encode(), "application/json"
            elif self.path == "/metrics":
                body, kind = status.metrics().encode(), "text/plain; version=0.0.4"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the daemon's own log says what matters

    server = ThreadingHTTPServer((host, port), Handler)
    # A long poll: it only bounds how soon shutdown() returns (never called: the thread
    # ends with the process), and the default half second costs idle processor time.
    serve = functools.partial(server.serve_forever, poll_interval=3600)
    threading.Thread(target=serve, daemon=True, name="health").start()
    return server

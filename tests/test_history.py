from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic import generate
from gitops_incidents import cache, gitcmd, snapshot, validation
from gitops_incidents.cli import main
from gitops_incidents.history import History, incident_histories, utc

from .conftest import Repo
from .scenarios import ALICE, BOB, DB_V1, SCENARIOS, T0, lifecycle

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def events_output(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["events", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_event_streams(name: str, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    SCENARIOS[name](repo)
    status, out, err = events_output(capsys, "--repo", str(repo.path))
    assert status == 0
    expected = GOLDEN / f"{name}.jsonl"
    expected_err = GOLDEN / f"{name}.stderr"
    if UPDATE:  # UPDATE_GOLDEN=1 pytest: write what the code gives now, then review the diff
        expected.write_text(out)
        expected_err.write_text(err)
    assert out == expected.read_text()
    assert err == expected_err.read_text()


def parsed(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def summary(out: str) -> list[tuple[str, str]]:
    return [
        (e["event"].split(".incident.")[1], e["resource"]["prefect.resource.id"])
        for e in parsed(out)
    ]


def test_lifecycle_in_words(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    """The golden stream, read as a person would check it."""
    lifecycle(repo)
    out = events_output(capsys, "--repo", str(repo.path))[1]
    assert [name for name, _ in summary(out)] == [
        "declared",
        "updated.severity", "updated.tags", "updated.related_resources", "comment.added",
        "comment.added",
        "updated.impact", "resolved",
        "reopened",
        "comment.edited", "declared", "resolved",
        "comment.removed",
        "deleted",
    ]  # fmt: skip
    events = parsed(out)
    # occurred never goes back, though Carol's commit is dated before its parent
    occurred = [e["occurred"] for e in events]
    assert occurred == sorted(occurred)
    assert events[5]["occurred"] == events[4]["occurred"] == utc(T0 + 600)
    assert events[5]["payload"]["committed"] == utc(T0 + 300).replace("Z", "+00:00")
    # a comment without author or time takes its commit's
    assert events[4]["payload"]["comment"] == {
        "text": "Failing over to the replica.",
        "author": "Bob Brown",
        "at": utc(T0 + 600),
    }
    # resolving without end_time: the resolving commit's time, carried by `resolved`
    assert events[7]["payload"]["end_time"] == utc(T0 + 1200)
    # the merge's actor is the branch author who made the change
    actors = [r for r in events[9]["related"] if r["prefect.resource.role"] == "actor"]
    assert actors == [
        {
            "prefect.resource.id": "git.author.dave@example.invalid",
            "prefect.resource.role": "actor",
            "prefect.resource.name": "Dave Diaz",
        }
    ]
    # the edited comment keeps the author and time it was first given
    assert events[9]["payload"]["comment"]["author"] == "Bob Brown"
    # each incident's events chain through `follows`
    db = [e for e in events if e["resource"]["prefect.resource.id"].endswith(".db")]
    assert db[0]["follows"] is None
    assert all(b["follows"] == a["id"] for a, b in itertools.pairwise(db))


def test_invalid_versions_are_reported_and_skipped(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    lifecycle(repo)
    typo = repo.git("log", "--format=%H", "--grep=typo").strip()
    err = events_output(capsys, "--repo", str(repo.path))[2]
    assert (
        err
        == f"warning: {typo[:12]}: incidents/db.yaml:14:1: unknown key 'severty' (did you mean 'severity'?)\n"
    )


def test_output_is_byte_identical_across_runs_cold_and_warm(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    lifecycle(repo)
    first = events_output(capsys, "--repo", str(repo.path))[1]
    second = events_output(capsys, "--repo", str(repo.path))[1]  # parse cache; steps cached
    assert events_output(capsys, "--repo", str(repo.path))[1] == first  # replayed
    cache = Path(repo.git("rev-parse", "--git-common-dir").strip())
    assert (repo.path / cache / "gitops-incidents" / "cache.sqlite3").is_file()
    subprocess.run(["rm", "-rf", str(repo.path / cache / "gitops-incidents")], check=True)
    third = events_output(capsys, "--repo", str(repo.path))[1]  # derived again
    assert first == second == third


def test_ids_survive_a_rebase_that_only_rewords(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lifecycle(repo)
    before = parsed(events_output(capsys, "--repo", str(repo.path))[1])
    # Rewrite every message (and so every commit id) of a linear copy of the history.
    copy = Repo(tmp_path / "copy")
    for sha in repo.git("rev-list", "--reverse", "--first-parent", "HEAD").split():
        for line in repo.git("ls-tree", "-r", "--name-only", sha).splitlines():
            copy.write(line, repo.git("show", f"{sha}:{line}"))
        for stale in set(copy.git("ls-files").splitlines()) - set(
            repo.git("ls-tree", "-r", "--name-only", sha).splitlines()
        ):
            (copy.path / stale).unlink()
        name, email, when = (
            repo.git("log", "-1", "--format=%an%x1f%ae%x1f%at", sha).strip().split("\x1f")
        )
        copy.commit("reworded: " + sha[:7], (name, email), int(when))
    after = parsed(events_output(capsys, "--repo", str(copy.path))[1])
    assert [e["id"] for e in after] == [e["id"] for e in before]
    assert [e["payload"]["commit"] for e in after] != [e["payload"]["commit"] for e in before]


def test_since_until_and_incident_filters(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    lifecycle(repo)
    every = parsed(events_output(capsys, "--repo", str(repo.path))[1])
    resolve = repo.git("log", "--format=%H", "--grep=resolve db").strip()
    since = parsed(events_output(capsys, "--repo", str(repo.path), "--since", resolve)[1])
    assert since == [e for e in every if e["occurred"] > utc(T0 + 1200)]
    until = parsed(events_output(capsys, "--repo", str(repo.path), "--until", resolve)[1])
    assert until == every[: len(every) - len(since)]
    dns = parsed(events_output(capsys, "--repo", str(repo.path), "--incident", "dns")[1])
    assert [e["event"] for e in dns] == [
        "prefect-cloud.incident.declared",
        "prefect-cloud.incident.resolved",
        "prefect-cloud.incident.deleted",
    ]


def test_since_a_commit_off_the_main_line(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    lifecycle(repo)
    branch_commit = repo.git("rev-parse", "cleanup").strip()
    status, _, err = events_output(capsys, "--repo", str(repo.path), "--since", branch_commit)
    assert status == 2
    assert f"{branch_commit} is not on the main line" in err


def test_unknown_revision_is_a_usage_error(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    lifecycle(repo)
    status, out, err = events_output(capsys, "--repo", str(repo.path), "--since", "no-such-rev")
    assert (status, out) == (2, "")
    assert err == "gitops-incidents: error: 'no-such-rev' is not a commit in this repository\n"


def test_incremental_walk_equals_the_full_one(repo: Repo) -> None:
    lifecycle(repo)
    middle = repo.git("log", "--format=%H", "--grep=resolve db").strip()
    with History(repo.path) as history:
        full = [e for step in history.walk("HEAD") for e in step.events]
        full_states = {k: v.to_dict() for k, v in history.states().items()}
    with History(repo.path) as history:
        list(history.walk(middle))  # a checkpoint at `middle`
    with History(repo.path) as history:
        steps = list(history.walk("HEAD", since=middle))
        tail = [e for step in steps for e in step.events]
        assert {k: v.to_dict() for k, v in history.states().items()} == full_states
    assert tail == full[len(full) - len(tail) :]
    assert steps[0].commit.parents[0] == middle


def read_twice(repo: Repo) -> None:
    """Walk the history twice: the second walk caches each commit's steps."""
    for _ in range(2):
        with History(repo.path) as history:
            list(history.walk("HEAD"))
    with sqlite3.connect(repo.path / ".git" / "gitops-incidents" / "cache.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM steps").fetchone()[0] == int(
            repo.git("rev-list", "--count", "--first-parent", "HEAD")
        )


def test_steps_are_cached_on_the_second_read(repo: Repo) -> None:
    lifecycle(repo)
    with History(repo.path) as history:
        list(history.walk("HEAD"))
    with sqlite3.connect(repo.path / ".git" / "gitops-incidents" / "cache.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM steps").fetchone()[0] == 0
    read_twice(repo)


def test_replay_continues_past_cached_history(repo: Repo) -> None:
    lifecycle(repo)
    read_twice(repo)
    repo.write("incidents/new.yaml", "name: New\nseverity: SEV-5\n")
    repo.commit("declare new", ALICE, T0 + 3000)
    with History(repo.path) as history:
        warm = [e for step in history.walk("HEAD") for e in step.events]
        warm_states = {k: v.to_dict() for k, v in history.states().items()}
    cache = repo.path / ".git" / "gitops-incidents"
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    with History(repo.path) as history:
        cold = [e for step in history.walk("HEAD") for e in step.events]
        assert {k: v.to_dict() for k, v in history.states().items()} == warm_states
    assert warm == cold
    assert cold[-1]["event"] == "prefect-cloud.incident.declared"


def test_replay_after_its_checkpoint_was_dropped(repo: Repo) -> None:
    lifecycle(repo)
    read_twice(repo)
    with History(repo.path) as history:
        expected = [e for step in history.walk("HEAD") for e in step.events]
        assert history.states()["db"].number == 1
    with sqlite3.connect(repo.path / ".git" / "gitops-incidents" / "cache.sqlite3") as db:
        db.execute("DELETE FROM checkpoints")
    repo.write("incidents/new.yaml", "name: New\nseverity: SEV-5\n")
    repo.commit("declare new", BOB, T0 + 3000)
    with History(repo.path) as history:
        got = [e for step in history.walk("HEAD") for e in step.events]
        states = history.states()
    assert got[:-1] == expected
    assert got[-1]["event"] == "prefect-cloud.incident.declared"
    assert (states["db"].number, states["dns"].number, states["new"].number) == (1, 2, 3)


def test_states_after_a_replayed_walk(repo: Repo) -> None:
    lifecycle(repo)
    read_twice(repo)
    with History(repo.path) as history:
        list(history.walk("HEAD"))
        first = {k: v.to_dict() for k, v in history.states().items()}
    with History(repo.path) as history:
        list(history.walk("HEAD"))  # replayed: the states come from the checkpoint
        assert {k: v.to_dict() for k, v in history.states().items()} == first
    assert first["db"]["document"]["status"] == "active"
    assert first["dns"]["document"] is None  # deleted, remembered


def test_shallow_clone_is_refused(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lifecycle(repo)
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(shallow)], check=True
    )
    status, out, err = events_output(capsys, "--repo", str(shallow))
    assert (status, out) == (1, "")
    assert "shallow clone" in err and "fetch-depth: 0" in err


def test_hostile_files_in_history(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("incidents/ok.yaml", "name: '<script>alert(1)</script>'\nseverity: SEV-1\n")
    repo.write("incidents/huge.yaml", b"name: " + b"x" * (2 * 1024 * 1024))
    repo.write("incidents/bomb.yaml", "a: &a [x]\nb: [*a, *a]\n")
    repo.write("incidents/../README.md", "outside\n")
    repo.commit("hostile", ALICE, T0)
    status, out, err = events_output(capsys, "--repo", str(repo.path))
    assert status == 0
    events = parsed(out)
    assert [e["resource"]["prefect.resource.name"] for e in events] == ["<script>alert(1)</script>"]
    assert "incidents/huge.yaml:1:1: file is 2.0 MiB; the limit is 1 MiB" in err
    assert "incidents/bomb.yaml:1:4: anchors and aliases are not allowed" in err


def test_empty_branch_history(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("README.md", "nothing tracked yet\n")
    repo.commit("start", ALICE, T0)
    assert events_output(capsys, "--repo", str(repo.path)) == (0, "", "")


def test_repository_without_commits(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = events_output(capsys, "--repo", str(repo.path))
    assert status == 1  # the repository, not the command line
    assert "the repository has no commits yet" in err


def test_incident_histories(repo: Repo) -> None:
    lifecycle(repo)
    histories = incident_histories(repo.path)
    assert [(h.state.number, h.state.id) for h in histories] == [(1, "db"), (2, "dns")]
    db = histories[0]
    assert db.state.document is not None and db.state.document["status"] == "active"
    assert [c["text"] for c in db.state.comments] == ["Failing over to replica db-2."]
    assert db.events[0]["event"].endswith(".declared") and db.events[-1]["event"].endswith(
        ".comment.removed"
    )
    assert histories[1].state.document is None  # deleted: its history stays
    assert histories[1].state.comments == []


def test_stopping_early_leaves_no_thread_or_process(repo: Repo) -> None:
    lifecycle(repo)
    before = threading.active_count()
    with History(repo.path) as history:
        for _ in history.walk("HEAD"):
            break
    assert threading.active_count() == before


def test_two_processes_share_the_cache(repo: Repo) -> None:
    lifecycle(repo)
    command = [sys.executable, "-m", "gitops_incidents", "--repo", str(repo.path), "events"]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)
    ]
    outputs = [run.communicate() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0]
    assert len({out for out, _ in outputs}) == 1
    assert all(b"Traceback" not in err for _, err in outputs)


def test_synthetic_histories_are_reproducible(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", incidents=5, commits=30, seed=3)
    second = generate(tmp_path / "b", incidents=5, commits=30, seed=3)
    other = generate(tmp_path / "c", incidents=5, commits=30, seed=4)
    head = ["git", "rev-parse", "HEAD"]
    shas = [
        subprocess.run(head, cwd=p, capture_output=True, text=True, check=True).stdout
        for p in (first, second, other)
    ]
    assert shas[0] == shas[1] != shas[2]
    assert len(list((first / "incidents").iterdir())) == 5
    with History(first) as history:
        steps = list(history.walk("HEAD"))
    assert len(steps) == 30
    assert all(1 <= len(step.commit.changes) <= 3 for step in steps)
    assert not [finding for step in steps for finding in step.findings]


def test_a_damaged_cache_is_rebuilt(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    lifecycle(repo)
    expected = events_output(capsys, "--repo", str(repo.path))[1]
    cache = repo.path / ".git" / "gitops-incidents" / "cache.sqlite3"
    cache.write_bytes(b"this is not a database" * 100)
    (cache.parent / "cache.sqlite3-wal").unlink(missing_ok=True)
    status, out, err = events_output(capsys, "--repo", str(repo.path))
    assert (status, out) == (0, expected)
    assert "Traceback" not in err


def test_each_file_version_is_parsed_once_ever(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    for number, severity in enumerate(["SEV-1", "SEV-2"] * 3):
        repo.write("incidents/flip.yaml", f"name: Flip\nseverity: {severity}\n")
        repo.commit(f"flip {number}", ALICE, T0 + number)
    parsed: list[bytes] = []
    read = validation.read_document

    def counting(path: str, data: bytes, marks: Any = None) -> Any:
        parsed.append(data)
        return read(path, data, marks)

    monkeypatch.setattr(validation, "read_document", counting)
    with History(repo.path) as history:
        events = [e for step in history.walk("HEAD") for e in step.events]
    assert len(events) == 6  # declared, then five severity changes
    assert len(parsed) == 2  # two distinct versions
    with History(repo.path) as history:
        list(history.walk("HEAD"))
    assert len(parsed) == 2


def _histories(root: Path, until: str) -> list[tuple[Any, ...]]:
    return [
        (h.state.number, h.state.id, h.state.to_dict(), json.dumps(h.events))
        for h in incident_histories(root, until)
    ]


def test_incident_histories_extend_their_cached_read_and_equal_a_whole_one(
    repo: Repo,
) -> None:
    """Read at every commit in turn (each read extends the last one's cached result),
    then after a rewrite: always what a whole read with no cache gives."""
    lifecycle(repo)
    commits = repo.git("rev-list", "--first-parent", "--reverse", "HEAD").split()
    cache = repo.path / ".git" / "gitops-incidents"
    for commit in [*commits, commits[2]]:  # the last one goes back: not a descendant
        extended = _histories(repo.path, commit)
        saved = cache.rename(cache.with_name("saved"))
        assert extended == _histories(repo.path, commit), commit
        shutil.rmtree(cache)
        saved.rename(cache)


@pytest.mark.parametrize(
    "module",
    sorted(p.relative_to(cache.PACKAGE).as_posix() for p in cache.PACKAGE.rglob("*.py")),
)
def test_the_cache_fingerprint_covers_every_module(tmp_path: Path, module: str) -> None:
    """An upgrade that changes any module (history, tracker, the Prefect impact...) is
    new code: nothing it cached before is read again."""
    copy = tmp_path / "gitops_incidents"
    shutil.copytree(cache.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert cache.code_fingerprint(copy) == cache.code_fingerprint()
    with (copy / module).open("a") as file:
        file.write("\n# changed\n")
    assert cache.code_fingerprint(copy) != cache.code_fingerprint()


def test_a_walk_from_a_snapshot_reads_the_states_asked_for_and_mends_a_damaged_one(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _lifecycle_snapshot(repo)
    position = repo.git("rev-parse", "HEAD").strip()
    files[snapshot.incident_path("db")] = b'{"id": "db"}'  # damaged: not a whole state
    seed = gitcmd.commit_tree(repo.path, None, files, "engine")
    repo.write("incidents/new.yaml", "name: New\nseverity: SEV-5\n")
    repo.commit("declare new", BOB, T0 + 3000)
    with History(repo.path, writable=False) as history:
        list(history.walk("HEAD"))
        expected = {k: v.to_dict() for k, v in history.states().items()}
    asked: list[str] = []
    load = History._load_states

    def counting(self: History, keys: list[str]) -> Any:
        asked.extend(keys)
        return load(self, keys)

    monkeypatch.setattr(History, "_load_states", counting)
    with History(repo.path, writable=False, seed=seed) as history:
        (step,) = history.walk("HEAD", since=position)
        states = history.states()
    assert [e["event"] for e in step.events] == ["prefect-cloud.incident.declared"]
    assert sorted(states) == sorted(expected) and asked == []  # none read yet
    assert states["dns"].to_dict() == expected["dns"]  # read when asked for
    assert len(asked) == 1
    assert states["db"].to_dict() == expected["db"]  # damaged: derived from history
    assert {k: v.to_dict() for k, v in states.items()} == expected


def test_a_checkpoint_whose_engine_snapshot_is_gone_is_walked_again(
    repo: Repo, tmp_path: Path
) -> None:
    files = _lifecycle_snapshot(repo)
    seed = gitcmd.commit_tree(repo.path, None, files, "engine")  # on no ref: gc drops it
    position = repo.git("rev-parse", "HEAD").strip()
    repo.write("incidents/db.yaml", DB_V1)
    repo.commit("db again", BOB, T0 + 3000)
    middle = repo.git("rev-parse", "HEAD").strip()
    with History(repo.path, seed=seed) as history:
        list(history.walk("HEAD", since=position))  # its checkpoint: db here, dns in `seed`
    repo.git("gc", "-q", "--prune=now")
    assert subprocess.run(["git", "-C", str(repo.path), "cat-file", "-e", seed]).returncode != 0
    repo.write("incidents/dns.yaml", "name: DNS outage again\nseverity: SEV-2\n")
    repo.commit("dns again", BOB, T0 + 3100)
    with History(Repo.clone(repo.path, tmp_path / "clone").path) as history:
        expected = [s.events for s in history.walk("HEAD", since=middle)]
        expected_states = {k: v.to_dict() for k, v in history.states().items()}
    with History(repo.path) as history:
        assert [s.events for s in history.walk("HEAD", since=middle)] == expected
        assert {k: v.to_dict() for k, v in history.states().items()} == expected_states
    assert [e["event"] for e in expected[0]] == ["prefect-cloud.incident.declared"]


def test_a_walk_since_where_the_engine_stood_before_starts_from_that_snapshot(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = gitcmd.commit_tree(repo.path, None, _lifecycle_snapshot(repo), "engine")
    before = repo.git("rev-parse", "HEAD").strip()
    repo.write("incidents/db.yaml", DB_V1)
    repo.commit("db again", BOB, T0 + 3000)
    with History(repo.path, writable=False, seed=first) as history:
        list(history.walk("HEAD", since=before))
        engine = gitcmd.commit_tree(repo.path, first, history.snapshot() or {}, "engine")
    repo.write("incidents/dns.yaml", "name: DNS outage again\nseverity: SEV-2\n")
    repo.commit("dns again", BOB, T0 + 3100)
    with History(repo.path, writable=False) as history:
        expected = [s.events for s in history.walk("HEAD", since=before)]
    assert not (repo.path / ".git" / "gitops-incidents").exists()  # no cache: a fresh clone's
    logged: list[list[str]] = []
    log = gitcmd.log

    def logging(root: Path, revisions: list[str], paths: list[str]) -> Any:
        logged.append(list(revisions))
        return log(root, revisions, paths)

    monkeypatch.setattr(gitcmd, "log", logging)
    # The engine stands at HEAD~1 now; its commit before stood at `before`.
    with History(repo.path, seed=engine) as history:
        assert [s.events for s in history.walk("HEAD", since=before)] == expected
    assert logged and all(".." in revisions[0] for revisions in logged)  # history not read
    assert [e["event"] for e in expected[1]] == ["prefect-cloud.incident.declared"]


def _lifecycle_snapshot(repo: Repo) -> dict[str, bytes | None]:
    """The lifecycle's history committed, and the files of the engine's snapshot at its end."""
    lifecycle(repo)
    with History(repo.path, writable=False) as history:
        list(history.walk("HEAD"))
        files = history.snapshot()
    assert files is not None
    return files

"""A hostile corpus: what a hostile contributor or an unlucky operator commits, and the
exact clean outcome of each (a located finding, a refusal, a report), never a traceback,
a lost action or lost data. Real repositories, real builds, real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_incidents.cli import main
from gitops_incidents.faults import POINTS
from tests.conftest import CONFIG, ROOT, T0, Repo, tallies
from tests.test_engine import PAGER, automation, incident
from tests.webhook_server import Receiver

OK = "name: Fine\nseverity: SEV-2\n"


def run(capsys: pytest.CaptureFixture[str], repo: Repo, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["--repo", str(repo.path), *args])
    out, err = capsys.readouterr()
    return status, out, err


def with_site(repo: Repo) -> Repo:
    shutil.copytree(
        ROOT / "site",
        repo.path / "site",
        ignore=shutil.ignore_patterns("build"),
        dirs_exist_ok=True,
    )
    repo.write("incidents/fine.yaml", OK)
    repo.commit("start", when=T0)
    return repo


# -- one bad commit must not break the tracker for good ----------------------------------


# Each stages what it commits.
def _non_utf8_name(repo: Repo) -> None:
    (repo.path / "incidents" / os.fsdecode(b"bad\xff.yaml")).write_text(OK)
    repo.git("add", "-A")


def _gitlink(repo: Repo) -> None:
    head = repo.head()
    for path in ("incidents/sub.yaml", "automations/sub.yaml"):
        repo.git("update-index", "--add", "--cacheinfo", f"160000,{head},{path}")


def _utc_overflow(repo: Repo) -> None:
    repo.write("incidents/late.yaml", OK + "start_time: 9999-12-31T23:59:59-23:59\n")
    repo.git("add", "-A")


def _hex_beyond_digit_limit(repo: Repo) -> None:
    repo.write("incidents/fine.yaml", OK + "metadata:\n  big: 0x" + "f" * 5000 + "\n")
    repo.git("add", "-A")


def _endless_window(repo: Repo) -> None:
    repo.write(
        "automations/long.yaml",
        "name: long\ntrigger:\n  expect: [x.y]\n  posture: Proactive\n"
        "  within: 315360000000\nactions:\n  - type: do-nothing\n",
    )


def _symlinked_incident(repo: Repo) -> None:
    (repo.path / "incidents" / "linked.yaml").symlink_to("/etc/hostname")
    repo.git("add", "-A")


# (what is committed, the finding `events` reports for it)
BAD_COMMITS: dict[str, tuple[Callable[[Repo], None], str]] = {
    "non-UTF-8 file name": (
        _non_utf8_name,
        "incidents/bad\\xff.yaml:1:1: the file name is not UTF-8",
    ),
    "gitlink named like an incident": (
        _gitlink,
        "incidents/sub.yaml:1:1: a submodule (gitlink), not a file",
    ),
    "timestamp overflowing in UTC": (
        _utc_overflow,
        "incidents/late.yaml:3:13: start_time: the time is out of range once converted to UTC",
    ),
    "hex integer beyond the digit limit": (
        _hex_beyond_digit_limit,
        "incidents/fine.yaml:4:8: number with too many digits",
    ),
    "symbolic link as an incident": (
        _symlinked_incident,
        "incidents/linked.yaml:1:1: a symbolic link, not a file: git records the link itself, not its target",
    ),
}


@pytest.mark.parametrize("case", BAD_COMMITS, ids=list(BAD_COMMITS))
def test_one_bad_commit_is_a_located_finding_and_the_walk_goes_on(
    repo: Repo, case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with_site(repo)
    assert run(capsys, repo, "apply")[0] == 0
    make, finding = BAD_COMMITS[case]
    make(repo)
    repo.git("commit", "-q", "-m", "the bad commit")
    bad = repo.head()
    repo.write("incidents/after.yaml", "name: After the bad commit\nseverity: SEV-3\n")
    repo.commit("a good one after it", when=T0 + 120)

    status, out, err = run(capsys, repo, "events", "--since", f"{bad}~1")
    assert status == 0
    assert f"warning: {bad[:12]}: {finding}" in err.splitlines()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["prefect-cloud.incident.declared"]  # after.yaml
    assert run(capsys, repo, "apply")[0] == 0
    assert run(capsys, repo, "report", "after")[0] == 0
    status, _, err = run(capsys, repo, "build", "--out", str(tmp_path / "out"))
    assert status == 0, err
    assert (tmp_path / "out" / "incidents" / "after.html").is_file()


def test_a_deadline_past_year_9999_is_refused_at_validate(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    _endless_window(repo)
    status, _, err = run(capsys, repo, "validate")
    assert status == 1
    assert err.splitlines()[0] == (
        "automations/long.yaml:5:11: trigger.within: a duration cannot be longer than 100 years"
    )


def test_a_commit_dated_after_year_9999_is_held_at_the_calendars_end(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with_site(repo)
    repo.write("incidents/future.yaml", OK)
    repo.commit("from the far future", when=300_000_000_000)  # year 11476
    status, out, _ = run(capsys, repo, "events", "--incident", "future")
    assert status == 0
    assert json.loads(out)["occurred"] == "9999-12-31T23:59:59Z"
    assert run(capsys, repo, "apply")[0] == 0
    assert run(capsys, repo, "status")[0] == 0
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0


# -- symbolic links: a finding, as git sees it; nothing outside is read ------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.yaml"
    path.parent.mkdir()
    path.write_text("name: TOP-SECRET-TOKEN\nseverity: [TOP-SECRET-TOKEN]\n")
    return path


@pytest.mark.parametrize(
    ("link", "finding"),
    [
        (
            "incidents/leak.yaml",
            "incidents/leak.yaml:1:1: incidents/leak.yaml is a symbolic link, not a file: git records the link itself, not its target",
        ),
        (
            "automations/leak.yaml",
            "automations/leak.yaml:1:1: automations/leak.yaml is a symbolic link, not a file: git records the link itself, not its target",
        ),
        (
            "gitops-incidents.yaml",
            "gitops-incidents.yaml:1:1: gitops-incidents.yaml is a symbolic link, not a file: git records the link itself, not its target",
        ),
    ],
)
def test_validate_never_follows_a_symlink_out_of_the_repository(
    repo: Repo, secret: Path, link: str, finding: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.path / link).parent.mkdir(parents=True, exist_ok=True)
    (repo.path / link).symlink_to(secret)
    for args in (
        ("validate",),
        ("validate", str(repo.path / link)),
        ("validate", "--format", "json"),
    ):
        status, out, err = run(capsys, repo, *args)
        assert status == 1
        assert "TOP-SECRET" not in out + err
    status, _, err = run(capsys, repo, "validate")
    assert finding in err.splitlines()
    # History agrees: the committed link is the same finding (automations: the engine's).
    repo.commit("a link", when=T0)
    status, _, err = run(capsys, repo, "apply" if link.startswith("automations/") else "events")
    assert "TOP-SECRET" not in err
    assert "a symbolic link, not a file" in err


def test_a_symlinked_folder_is_a_finding_not_zero_problems(
    repo: Repo, secret: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.path / "incidents").symlink_to(secret.parent)
    status, out, err = run(capsys, repo, "validate")
    assert status == 1
    assert "TOP-SECRET" not in out + err
    assert err.splitlines()[0] == (
        "incidents:1:1: a symbolic link, not a file: git records the link itself, "
        "not its target; nothing behind it is read"
    )


# -- ingest: what no text can hold, and events from the future ---------------------------


def _event(n: int, occurred: str, resource: str = "prefect.flow-run.r") -> str:
    return json.dumps(
        {"id": f"e{n}", "occurred": occurred, "event": "prefect.flow-run.Failed",
         "resource": {"prefect.resource.id": f"{resource}{n}"}}
    )  # fmt: skip


def test_an_event_with_lone_surrogates_is_a_located_problem(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo.write("incidents/fine.yaml", OK)
    repo.commit("start", when=T0)
    events = tmp_path / "events.jsonl"
    events.write_text(_event(1, "2027-01-15T09:00:00Z").replace("r1", "\\ud800") + "\n")
    status, _, err = run(capsys, repo, "ingest", str(events))
    assert status == 1
    assert f"{events}:1:1: the event holds a lone surrogate" in err
    assert run(capsys, repo, "status")[0] == 0  # the ledger stays readable


def test_an_event_from_the_far_future_does_not_move_the_clock_for_good(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo.write("incidents/fine.yaml", OK)
    repo.commit("start", when=T0)
    assert run(capsys, repo, "apply")[0] == 0
    events = tmp_path / "events.jsonl"
    events.write_text(_event(1, "9999-12-31T23:59:59Z") + "\n")
    assert run(capsys, repo, "ingest", str(events))[0] == 0
    from gitops_incidents.ledger import Ledger

    _, state = Ledger(repo.path, "main").read()
    assert max(state.ingested.values()) < T0 + 3600  # bounded near the engine's clock
    # Later events are still remembered as duplicates (the horizon did not jump).
    events.write_text(_event(2, "2027-01-15T09:00:00Z") + "\n")
    assert run(capsys, repo, "ingest", str(events))[0] == 0
    _, state = Ledger(repo.path, "main").read()
    assert set(state.ingested) == {"e1", "e2"}


# -- the site ------------------------------------------------------------------------------


def test_control_characters_in_a_name_keep_the_atom_feed_well_formed(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from xml.etree import ElementTree

    with_site(repo)
    repo.write("incidents/bell.yaml", 'name: "Ring \\a the \\x1b bell"\nseverity: SEV-2\n')
    repo.commit("bell", when=T0 + 60)
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0
    feed = ElementTree.parse(tmp_path / "out" / "feed.xml").getroot()
    titles = [e.text for e in feed.iter("{http://www.w3.org/2005/Atom}title")]
    assert "#2 - Ring \ufffd the \ufffd bell (SEV-2, active)" in titles


def test_a_script_in_the_configured_title_reaches_no_page_raw(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with_site(repo)
    repo.write(
        "gitops-incidents.yaml",
        "site: {title: '</title><script>document.body.dataset.pwned=1</script>'}\n",
    )
    repo.commit("hostile title", when=T0 + 60)
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0
    for page in (tmp_path / "out").rglob("*"):
        # Pages, the Atom feed, and the search index (Material shows its titles as HTML).
        if page.suffix in (".html", ".xml") or page.name == "search_index.json":
            assert "<script>document.body" not in page.read_text(), page
    home = (tmp_path / "out" / "index.html").read_text()
    assert "&lt;/title&gt;&lt;script&gt;document.body.dataset.pwned=1" in home
    from tests.browser import served

    with served(tmp_path / "out") as site:
        for name in ("index.html", "incidents/fine.html", "metrics.html"):
            with site.visit(name, 1280) as visit:
                assert visit.js("!!document.querySelector('.md-search')")  # Material's scripts ran
                assert visit.js("document.body.dataset.pwned") is None, name
                assert visit.problems == [], name


# -- history the engine cannot match, and a configuration it cannot read -----------------


NS = "prefect-cloud"


def _page_on_declare(tracker: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    """An automation that pages on every declaration, and the engine's first run."""
    tracker.write("automations/page.yaml", automation(f"{NS}.incident.declared", PAGER))
    tracker.commit("page on declare", when=T0 + 10)
    assert run(capsys, tracker, "apply")[0] == 0


def _declared_names(receiver: Receiver) -> list[str]:
    return [r.json()["resource"]["prefect.resource.name"] for r in receiver.to("/pager")]


@pytest.mark.parametrize("cache", ["kept", "gone"])  # gone: a fresh clone's, the ledger's alone
def test_a_squash_force_push_that_declares_acts_on_the_new_and_lists_the_rest(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str], cache: str
) -> None:
    start = tracker.head()
    _page_on_declare(tracker, capsys)
    tracker.write("incidents/a.yaml", incident("A"))
    tracker.commit("declare a", when=T0 + 20)
    tracker.write("incidents/a.yaml", incident("A", "SEV-1"))
    tracker.commit("raise a", when=T0 + 30)
    assert run(capsys, tracker, "apply")[0] == 0
    assert _declared_names(receiver) == ["A"]

    # Squash everything since the start into one commit that also declares b.
    tracker.git("reset", "-q", "--soft", start)
    tracker.write("incidents/b.yaml", incident("B"))
    tracker.commit("squashed", when=T0 + 40)
    if cache == "gone":
        shutil.rmtree(tracker.path / ".git" / "gitops-incidents")
    status, _, err = run(capsys, tracker, "apply")
    assert status == 1
    assert _declared_names(receiver) == ["A", "B"]  # b's declaration acted on, once
    assert "note: history was rewritten" in err
    assert f"skipped: {NS}.incident.declared of {NS}.incident.a (" in err
    status, _, err = run(capsys, tracker, "status")
    assert status == 1
    assert f"{NS}.incident.declared of a (" in err and "history was rewritten" in err
    assert run(capsys, tracker, "apply")[0] == 0  # nothing new: nothing again
    assert _declared_names(receiver) == ["A", "B"]
    assert run(capsys, tracker, "status", "--acknowledge")[0] == 0
    assert run(capsys, tracker, "status")[0] == 0


def test_a_git_replace_of_the_tip_is_reported_and_history_read_as_committed(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    _page_on_declare(tracker, capsys)
    tip = tracker.head()
    tracker.write("incidents/x.yaml", incident("X"))
    replacement = tracker.commit("a replacement that declares x", when=T0 + 20)
    tracker.git("reset", "-q", "--hard", tip)
    tracker.git("replace", tip, replacement)
    status, _, err = run(capsys, tracker, "apply")
    assert status == 1
    assert "error: 1 commit(s) replaced with git replace" in err
    assert receiver.to("/pager") == []
    status, _, err = run(capsys, tracker, "status")
    assert status == 1 and "replaced with git replace: ignored" in err
    assert run(capsys, tracker, "events", "--incident", "x")[1] == ""


def test_an_invalid_configuration_stops_the_engine_until_it_is_valid_again(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    _page_on_declare(tracker, capsys)
    tracker.write("gitops-incidents.yaml", CONFIG + "namespace: Not A Namespace\n")
    tracker.write("incidents/c.yaml", incident("C"))
    bad = tracker.commit("a broken configuration", when=T0 + 20)
    status, _, err = run(capsys, tracker, "apply")
    assert status == 1
    assert (
        f"error: {bad[:12]}: gitops-incidents.yaml:9:12: namespace: string should match "
        "pattern '^[a-z0-9][a-z0-9-]*$': the engine acts on nothing from this commit on"
    ) in err
    assert f"skipped: {NS}.incident.declared of {NS}.incident.c ({bad[:12]})" in err
    assert receiver.to("/pager") == []
    assert run(capsys, tracker, "status")[0] == 1

    tracker.write("gitops-incidents.yaml", CONFIG)
    tracker.write("incidents/d.yaml", incident("D"))
    tracker.commit("fixed", when=T0 + 30)
    assert run(capsys, tracker, "apply")[0] == 0
    assert _declared_names(receiver) == ["D"]


# -- template resource bombs ----------------------------------------------------------------

BOMBS = {
    "string multiplication": "{{ 'a' * 1000000000 }}",
    "a multiplied variable": "{% set n = 1000000000 %}{{ 'ab' * n }}",
    "a list multiplied twice": "{{ ([1] * 1000000) * 1000000 }}",
    "a power": "{{ 2 ** 100000000 }}",
    "a %-format width": "{{ '%0999999999d' % 1 }}",
    "a format spec width": "{{ '{:>999999999}'.format(1) }}",
    "a nested format width": "{{ '{:{}}'.format(1, 999999999) }}",
    "center": "{{ 'x' | center(999999999) }}",
    "str.center": "{{ 'x'.center(999999999) }}",
    "indent by a million": "{% set s = 'a\\n' * 400000 %}{{ s | indent(1000000) }}",
    "replace the empty string": "{% set s = 'a' * 1000000 %}{{ s | replace('', s) }}",
    "str.replace": "{% set s = 'a' * 1000000 %}{{ s.replace('a', s) }}",
    "join with a megabyte": "{% set s = 'a' * 1000000 %}{{ range(100) | join(s) }}",
    "expandtabs": "{% set s = '\\t' * 1000000 %}{{ s.expandtabs(1000) }}",
    "batch padding": "{{ range(3) | batch(999999999, 'x') | list }}",
    "~ doubling in a loop": "{% set ns = namespace(s='a') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "+ doubling in a loop": "{% set ns = namespace(s='a') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "nested loops over long strings": "{% for a in 'x' * 100000 %}{% for b in 'y' * 100000 %}{% endfor %}{% endfor %}",
    "a macro calling itself twice": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "output over the limit": "{% for i in range(100) %}{% for j in range(100) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("source", BOMBS.values(), ids=list(BOMBS))
def test_a_template_bomb_compiles_at_once_and_fails_its_render_cleanly(source: str) -> None:
    from gitops_incidents.templates import TemplateLimit, compile_template, render

    template = compile_template(source)  # what validate does: nothing is folded or built
    with pytest.raises(TemplateLimit):
        render(template, {})


def test_templates_within_the_bounds_render_as_jinja_does() -> None:
    from gitops_incidents.templates import compile_template, render

    source = (
        "{{ 'ab' * 3 }}|{{ '%5d' % 3 }}|{{ 'x' ~ 'y' }}|{% for i in range(3) %}{{ i }}{% endfor %}"
        "|{{ [1, 2] | join(',') }}|{{ 'a b' | replace(' ', '-') }}|{{ '{:>4}'.format(1) }}"
        "|{{ 'x' | center(5) }}|{{ 2 ** 10 }}|{{ 'l1\\nl2' | indent(2) }}"
    )
    assert (
        render(compile_template(source), {})
        == "ababab|    3|xy|012|1,2|a-b|   1|  x  |1024|l1\n  l2"
    )


def test_a_bomb_in_an_action_is_a_failed_action_and_the_others_run(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = "  - type: call-webhook\n    target: pager\n    payload: \"{{ 'a' * 1000000000 }}\"\n"
    tracker.write("automations/bomb.yaml", automation(f"{NS}.incident.declared", bomb + PAGER))
    tracker.commit("a bomb", when=T0 + 10)
    assert run(capsys, tracker, "validate")[0] == 0
    assert run(capsys, tracker, "apply")[0] == 0
    tracker.write("incidents/a.yaml", incident("A"))
    tracker.commit("declare a", when=T0 + 20)
    status, _, err = run(capsys, tracker, "apply")
    assert status == 1
    assert (
        "failed: on prefect-cloud.incident.declared: call-webhook: template failed at render time: the template would build a value over 1048576 characters"
        in err
    )
    assert _declared_names(receiver) == ["A"]  # the second action ran


# -- a crash between an action's steps: the working tree, the index, the next commit -------

COMMENT = "  - type: comment-on-incident\n    source: inferred\n    text: Seen by the bot.\n"
# A webhook first, so that every crash point is on the way to the comment's commit.
PAGE_AND_COMMENT = PAGER + COMMENT


def _crashed_apply(tracker: Repo, point: str) -> None:
    from tests.test_engine import apply_process

    tracker.write("automations/act.yaml", automation(f"{NS}.incident.declared", PAGE_AND_COMMENT))
    tracker.commit("automation", when=T0 + 1)
    assert main(["--repo", str(tracker.path), "apply"]) == 0
    tracker.write("incidents/x.yaml", incident("X"))
    tracker.commit("declare x", when=T0 + 2)
    crashed = apply_process(tracker, crash=point)
    assert crashed.wait() == 70, crashed.communicate()


def _uninterrupted(tracker: Repo) -> tuple[str, str]:
    """The incident file and `git status` after an apply nothing interrupted."""
    return (tracker.path / "incidents/x.yaml").read_text(), tracker.git("status", "--porcelain")


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_between_steps_then_a_human_commit_never_reverts_the_bot(
    tracker: Repo, point: str
) -> None:
    _crashed_apply(tracker, point)
    # Whatever git status shows now, a person's `git add -A && git commit` keeps the edit.
    tracker.write("incidents/old.yaml", "name: Before the engine, edited\nseverity: SEV-2\n")
    tracker.commit("a human commit right after the crash", author=("Human", "h@example.invalid"))
    seen = [
        tracker.git("show", f"{rev}:incidents/x.yaml").count("Seen by") for rev in ("HEAD~", "HEAD")
    ]
    assert seen[1] >= seen[0]  # it never takes away what the bot committed
    assert main(["--repo", str(tracker.path), "apply"]) == 0  # the restart
    assert tracker.git("show", "HEAD:incidents/x.yaml").count("Seen by the bot.") == 1
    assert tracker.git("status", "--porcelain") == ""
    from gitops_incidents.ledger import Ledger

    _, state = Ledger(tracker.path, "main").read()
    assert [i.status for i in state.invocations.values()] == ["done", "done"]


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_between_steps_then_a_restart_leaves_what_an_uninterrupted_run_leaves(
    tracker: Repo, point: str, tmp_path: Path
) -> None:
    twin = Repo(tmp_path / "twin")  # the same history, applied without a crash
    for repo in (tracker, twin):
        repo.write("gitops-incidents.yaml", CONFIG)
        repo.write("incidents/old.yaml", "name: Before the engine\nseverity: SEV-2\n")
        repo.commit("start", when=T0)
    twin.write("automations/act.yaml", automation(f"{NS}.incident.declared", PAGE_AND_COMMENT))
    twin.commit("automation", when=T0 + 1)
    assert main(["--repo", str(twin.path), "apply"]) == 0
    twin.write("incidents/x.yaml", incident("X"))
    twin.commit("declare x", when=T0 + 2)
    assert main(["--repo", str(twin.path), "apply"]) == 0

    _crashed_apply(tracker, point)
    assert main(["--repo", str(tracker.path), "apply"]) == 0
    assert _uninterrupted(tracker) == _uninterrupted(twin)
    assert tracker.git("ls-files", "-s") == twin.git("ls-files", "-s")
    assert tracker.git("show", "HEAD:incidents/x.yaml") == twin.git("show", "HEAD:incidents/x.yaml")
    assert len(tracker.git("log", "--format=%H", "--author=gitops-incidents").split()) == 1


def test_local_changes_in_the_way_fail_the_action_and_commit_nothing(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker.write("automations/act.yaml", automation(f"{NS}.incident.declared", COMMENT))
    tracker.commit("automation", when=T0 + 1)
    assert run(capsys, tracker, "apply")[0] == 0
    tracker.write("incidents/x.yaml", incident("X"))
    tracker.commit("declare x", when=T0 + 2)
    tracker.write("incidents/x.yaml", incident("X", extra="summary: a draft\n"))  # not committed
    head = tracker.head()
    status, _, err = run(capsys, tracker, "apply")
    assert status == 1
    assert (
        "incidents/x.yaml has changes in the checked-out working tree that are not committed" in err
    )
    assert tracker.head() == head
    assert "summary: a draft" in (tracker.path / "incidents/x.yaml").read_text()


# -- building a branch not yet trusted -------------------------------------------------------

HOOK = "from pathlib import Path\nPath(__file__).with_name('HOOK-RAN').write_text('x')\n"


def _pull_request(repo: Repo) -> str:
    """A tracker whose main is trusted, and a branch checked out on top of it."""
    with_site(repo)
    repo.git("checkout", "-q", "-b", "pull-request")
    return "main"


def _project(repo: Repo) -> str:
    return (repo.path / "site/mkdocs.yml").read_text()


UNSAFE: dict[str, tuple[Callable[[Repo], object], str]] = {
    "a hook": (
        lambda r: (
            r.write("site/hooks.py", HOOK),
            r.write("site/mkdocs.yml", _project(r) + "hooks: [hooks.py]\n"),
        ),
        "site/mkdocs.yml:31:1: hooks: not as on the base main; a safe build takes it only as the base branch has it",
    ),
    "a Python tag": (
        lambda r: r.write(
            "site/mkdocs.yml",
            _project(r).replace(
                "site_name: Data platform incidents",
                'site_name: !!python/object/apply:os.system ["touch site/HOOK-RAN"]',
            ),
        ),
        "site/mkdocs.yml:4:12: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed (a safe build reads plain YAML: MkDocs's loader runs code)",
    ),
    "an environment variable": (
        lambda r: r.write(
            "site/mkdocs.yml",
            _project(r).replace(
                "site_name: Data platform incidents", "site_name: !ENV SECRET_TOKEN"
            ),
        ),
        "site/mkdocs.yml:4:12: tag '!ENV' is not allowed (a safe build reads plain YAML: MkDocs's loader runs code)",
    ),
    "docs_dir outside": (
        lambda r: r.write(
            "site/mkdocs.yml", _project(r).replace("docs_dir: docs", "docs_dir: ../..")
        ),
        "site/mkdocs.yml:5:1: docs_dir: not as on the base main; a safe build takes it only as the base branch has it",
    ),
    "a symlink out of the repository": (
        lambda r: (r.path / "site/docs/leak.md").symlink_to("/etc/hostname"),
        "site/docs/leak.md:1:1: a symbolic link out of the repository, to /etc/hostname",
    ),
    "a symlink into .git": (
        lambda r: (r.path / "site/docs/config.md").symlink_to("../../.git/config"),
        "site/docs/config.md:1:1: a symbolic link out of the repository, to",
    ),
    "a script in the site name": (
        lambda r: r.write(
            "site/mkdocs.yml",
            _project(r).replace(
                "site_name: Data platform incidents", "site_name: <script>alert(1)</script>"
            ),
        ),
        "site/mkdocs.yml:4:12: site_name: markup or a script URL, which Material prints as it is",
    ),
    "a script URL in the nav": (
        lambda r: r.write(
            "site/mkdocs.yml",
            _project(r).replace("  - About: about.md", "  - About: 'javascript:alert(1)'"),
        ),
        "site/mkdocs.yml:27:12: nav.4.About: markup or a script URL, which Material prints as it is",
    ),
}


@pytest.mark.parametrize("case", UNSAFE, ids=list(UNSAFE))
def test_a_safe_build_refuses_what_would_run_code_or_leave_the_repository(
    repo: Repo, case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = _pull_request(repo)
    change, finding = UNSAFE[case]
    change(repo)
    repo.commit("the pull request", when=T0 + 60)
    status, _, err = run(
        capsys, repo, "build", "--safe", "--base", base, "--out", str(tmp_path / "out")
    )
    assert status == 1
    assert err.splitlines()[0].startswith(finding), err
    assert err.splitlines()[-1].startswith("not built:")
    assert not (tmp_path / "out").exists()
    assert not (repo.path / "site" / "HOOK-RAN").exists()
    assert "SECRET" not in err.replace("SECRET_TOKEN", "")


def test_a_safe_build_takes_what_the_base_already_has_and_builds(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo.write("site/hooks.py", HOOK.replace("HOOK-RAN", "BASE-HOOK-RAN"))
    with_site(repo)
    repo.write("site/mkdocs.yml", _project(repo) + "hooks: [hooks.py]\n")
    repo.commit("a hook, reviewed and merged", when=T0 + 30)
    repo.git("checkout", "-q", "-b", "pull-request")
    repo.write("incidents/new.yaml", "name: From the pull request\nseverity: SEV-3\n")
    repo.commit("the pull request", when=T0 + 60)
    out = tmp_path / "out"
    assert run(capsys, repo, "build", "--safe", "--base", "main", "--out", str(out))[0] == 0
    assert (out / "index.html").is_file()
    assert (repo.path / "site" / "BASE-HOOK-RAN").exists()  # the base's own hook
    # The same hook file with other code in the pull request is refused.
    repo.write("site/hooks.py", HOOK)
    repo.commit("change the hook", when=T0 + 90)
    status, _, err = run(capsys, repo, "build", "--safe", "--base", "main", "--out", str(out))
    assert status == 1
    assert err.splitlines()[0] == (
        "site/hooks.py:1:1: changed since the base main, and a build runs it"
    )
    assert not (repo.path / "site" / "HOOK-RAN").exists()


def test_a_plain_build_runs_the_projects_hooks_as_documented(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with_site(repo)
    repo.write("site/hooks.py", HOOK)
    repo.write("site/mkdocs.yml", _project(repo) + "hooks: [hooks.py]\n")
    repo.commit("a hook", when=T0 + 30)
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0
    assert (repo.path / "site" / "HOOK-RAN").exists()


# -- damaged state: the cache is rebuilt, the ledger is a clear error ----------------------

DAMAGES = {
    "bytes that are not marshal": "UPDATE {table} SET value = X'00ff00ff'",
    "a valid value of another row": "UPDATE {table} SET value = (SELECT value FROM {table} ORDER BY key DESC LIMIT 1)",
    "an empty value": "UPDATE {table} SET value = X''",
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=list(DAMAGES))
def test_a_cache_with_damaged_values_is_rebuilt(
    repo: Repo, damage: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sqlite3

    from tests.scenarios import lifecycle

    lifecycle(repo)
    expected = run(capsys, repo, "events")[1]
    assert run(capsys, repo, "events")[1] == expected  # the second read fills every table
    run(capsys, repo, "report", "db")
    cache = repo.path / ".git" / "gitops-incidents" / "cache.sqlite3"
    with sqlite3.connect(cache) as db:
        for table in ("parsed", "states", "steps", "checkpoints", "histories"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
            db.execute(damage.format(table=table))
    for args in (("events",), ("events", "--since", "HEAD~3")):
        status, out, err = run(capsys, repo, *args)
        assert status == 0 and "Traceback" not in err
        tail = expected.splitlines()[-len(out.splitlines()) :] if out else []
        assert out.splitlines() == tail
    assert run(capsys, repo, "events")[1] == expected
    assert run(capsys, repo, "report", "db")[0] == 0
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0  # the built-in site
    with_site(repo)
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0


def _damage_ledger(repo: Repo, change: Callable[[dict[str, object]], object]) -> None:
    from gitops_incidents import gitcmd
    from gitops_incidents.ledger import Ledger

    ledger = Ledger(repo.path, "main")
    commit, _ = ledger.read()
    assert commit is not None
    data = json.loads(gitcmd.read_blob(repo.path, commit, "engine.json") or b"")
    change(data)
    damaged = gitcmd.commit_tree(repo.path, commit, {"engine.json": json.dumps(data).encode()}, "x")
    assert gitcmd.update_ref(repo.path, ledger.ref, damaged, commit)


def _unknown_firing(data: dict[str, object]) -> None:
    invocations = data["invocations"]
    assert isinstance(invocations, dict)
    invocations["page/not-a-firing/0"] = {"key": "page/not-a-firing/0", "type": "do-nothing"}


LEDGER_DAMAGES: dict[str, tuple[Callable[[dict[str, object]], object], str]] = {
    "a position that is a number": (
        lambda d: d.update(position=5),
        "position: input should be a valid string",
    ),
    "a clock that is text": (
        lambda d: d.update(clock="soon"),
        "clock: input should be a valid number",
    ),
    "windows of the wrong shape": (lambda d: d.update(windows={"buckets": [["x"]]}), "buckets.0"),
    "an invocation of an unknown firing": (
        _unknown_firing,
        "invocation 'page/not-a-firing/0' names no firing of the ledger",
    ),
}


@pytest.mark.parametrize("case", LEDGER_DAMAGES, ids=list(LEDGER_DAMAGES))
def test_an_engine_state_of_wrong_types_is_a_clear_error_naming_the_ref(
    repo: Repo, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("incidents/fine.yaml", OK)
    repo.commit("start", when=T0)
    assert run(capsys, repo, "apply")[0] == 0
    change, reason = LEDGER_DAMAGES[case]
    _damage_ledger(repo, change)
    for command in ("apply", "status"):
        status, _, err = run(capsys, repo, command)
        assert status == 1  # the repository's state, not a usage error
        assert err.startswith(
            "gitops-incidents: error: refs/gitops-incidents/main:engine.json cannot be read ("
        )
        assert reason in err


# -- build and serve: refusals and clean errors ----------------------------------------------


def test_build_never_empties_a_folder_it_did_not_make(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with_site(repo)
    repo.write("incidents/draft.yaml", "name: Not committed yet\nseverity: SEV-3\n")
    for out, reason in [
        ("incidents", "emptying it would delete the tracker's own"),
        ("automations", "emptying it would delete the tracker's own"),
        ("site/docs", "emptying it would delete the tracker's own"),
        (".", "emptying it would delete the tracker's own"),
        (".git", "emptying it would delete the tracker's own"),
        ("incidents/fine.yaml/x", "inside the tracker's own"),
    ]:
        for force in ((), ("--force",)):
            status, _, err = run(capsys, repo, "build", "--out", str(repo.path / out), *force)
            assert status == 2 and reason in err, (out, err)
    assert (repo.path / "incidents/draft.yaml").is_file()  # the uncommitted draft is kept
    full = tmp_path / "photos"
    full.mkdir()
    (full / "holiday.jpg").write_bytes(b"\xff\xd8")
    status, _, err = run(capsys, repo, "build", "--out", str(full))
    assert status == 2 and "holds files a build did not make" in err and "--force" in err
    assert (full / "holiday.jpg").is_file()
    assert run(capsys, repo, "build", "--out", str(full), "--force")[0] == 0
    assert not (full / "holiday.jpg").exists()
    assert run(capsys, repo, "build", "--out", str(full))[0] == 0  # its own: the marker
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    status, _, err = run(capsys, repo, "build", "--out", str(a_file / "site"))
    assert status == 2 and f"{a_file} is a file, not a folder" in err


def test_build_of_an_empty_repository_or_a_shallow_clone_says_why_in_one_line(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "site", repo.path / "site", ignore=shutil.ignore_patterns("build"))
    status, _, err = run(capsys, repo, "build", "--out", str(tmp_path / "a"))
    assert status == 1 and "gitops-incidents: the repository has no commits yet" in err
    assert "Traceback" not in err
    with_site(repo)
    repo.commit("more", when=T0 + 60)
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", repo.path.as_uri(), str(shallow)], check=True
    )
    result = _process_at(shallow, "build", "--out", str(tmp_path / "b"))
    assert result.returncode == 1 and "this is a shallow clone" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_address_is_a_usage_error(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    with_site(repo)
    for address in ("nonsense", "127.0.0.1:99999", ":8000", "127.0.0.1:http"):
        status, _, err = run(capsys, repo, "serve", "--dev-addr", address)
        assert status == 2 and "expected HOST:PORT" in err


@pytest.mark.parametrize("name", ["index", "README"])
def test_an_incident_named_like_a_site_page_is_a_finding(
    repo: Repo, name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with_site(repo)
    repo.write(f"incidents/{name}.yaml", "name: Would replace the listing\nseverity: SEV-1\n")
    assert run(capsys, repo, "validate")[2].splitlines()[0] == (
        f"incidents/{name}.yaml:1:1: id {name!r} is the site's own page incidents/index.html"
    )
    repo.commit("an incident named like a page", when=T0 + 60)
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0
    listing = (tmp_path / "out" / "incidents" / "index.html").read_text()
    assert "All incidents" in listing and "Would replace the listing" not in listing


def test_a_tag_named_index_gets_a_page_of_its_own(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from gitops_incidents.site import tag_slug

    with_site(repo)
    repo.write("incidents/tagged.yaml", OK + "tags: [index, README, ok]\n")
    repo.commit("tags named like pages", when=T0 + 60)
    assert run(capsys, repo, "build", "--out", str(tmp_path / "out"))[0] == 0
    tags = tmp_path / "out" / "tags"
    assert "<h1>Tags</h1>" in (tags / "index.html").read_text()
    for tag in ("index", "README"):
        assert tag_slug(tag) not in ("index", "README", "readme")
        assert f"<h1>Tag: {tag}</h1>" in (tags / f"{tag_slug(tag)}.html").read_text()
    assert tag_slug("ok") == "ok"


def _process_at(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(root), *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def _as_format_1(repo: Repo, *, digests: bool) -> None:
    """The engine's ref as version 1 of the ledger kept it: the incidents' tallies inline
    in engine.json (with their digests, or, earlier still, without), none beside it."""
    from gitops_incidents import gitcmd
    from gitops_incidents.ledger import TALLIES, Ledger

    kept = tallies(repo)
    ledger = Ledger(repo.path, "main")
    commit, _ = ledger.read()
    assert commit is not None
    data = json.loads(gitcmd.read_blob(repo.path, commit, "engine.json") or b"")
    del data["evaluated"]
    data |= {"format": 1, "ordinals": {i: events for i, (events, _) in kept.items()}}
    if digests:
        data["digests"] = {i: digest for i, (_, digest) in kept.items()}
    files = {TALLIES: None, "engine.json": json.dumps(data).encode()}
    old = gitcmd.commit_tree(repo.path, commit, files, "as format 1")
    assert gitcmd.update_ref(repo.path, ledger.ref, old, commit)


def _declare_and_apply(tracker: Repo, capsys: pytest.CaptureFixture[str], *names: str) -> None:
    """Pages on declaration, incidents `names` (named in capitals) declared, and applied."""
    _page_on_declare(tracker, capsys)
    for name in names:
        tracker.write(f"incidents/{name}.yaml", incident(name.upper()))
    tracker.commit(f"declare {' and '.join(names)}", when=T0 + 20)
    assert run(capsys, tracker, "apply")[0] == 0


def test_a_ledger_without_digests_takes_a_rewrite_with_the_same_changes_as_the_same(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    _declare_and_apply(tracker, capsys, "a")
    _as_format_1(tracker, digests=False)  # as an earlier version wrote it
    tracker.write("incidents/a.yaml", incident("A", "SEV-1"))
    tracker.commit("raise a", when=T0 + 30)
    assert run(capsys, tracker, "apply")[0] == 0
    assert tallies(tracker)["a"] == (2, None)  # moved out, still without a digest
    tracker.git("commit", "-q", "--amend", "-m", "raise a (reworded)")
    status, _, err = run(capsys, tracker, "apply")
    assert status == 0 and "skipped" not in err and "history was rewritten" in err
    assert _declared_names(receiver) == ["A"]
    assert tallies(tracker)["a"][0] == 2 and tallies(tracker)["a"][1] is not None


def test_incidents_with_the_same_tally_are_each_taken_as_evaluated_after_a_rewrite(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    _declare_and_apply(tracker, capsys, "a", "b")
    _as_format_1(tracker, digests=False)
    tracker.write("incidents/c.yaml", incident("C"))
    tracker.commit("declare c", when=T0 + 30)
    assert run(capsys, tracker, "apply")[0] == 0
    # Moved out without digests: a's and b's tallies are one blob, at two paths.
    moved = tallies(tracker)
    assert moved["a"] == moved["b"] == (1, None)
    tracker.git("commit", "-q", "--amend", "-m", "declare c (reworded)")
    status, _, err = run(capsys, tracker, "apply")
    assert status == 0 and "skipped" not in err and "history was rewritten" in err
    assert _declared_names(receiver) == ["A", "B", "C"]  # neither declared twice


def test_a_ledger_of_format_1_moves_its_tallies_out_and_acts_on_nothing_twice(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    _declare_and_apply(tracker, capsys, "a", "b")
    before = tallies(tracker)
    _as_format_1(tracker, digests=True)
    tracker.write("incidents/c.yaml", incident("C"))
    tracker.write("incidents/a.yaml", incident("A", "SEV-1"))
    tracker.commit("declare c, raise a", when=T0 + 30)
    assert run(capsys, tracker, "apply")[0] == 0
    assert _declared_names(receiver) == ["A", "B", "C"]
    after = tallies(tracker)
    assert after["b"] == before["b"] and after["a"][0] == 2 and set(after) == {*before, "c"}
    engine = json.loads(tracker.git("show", "refs/gitops-incidents/main:engine.json"))
    assert engine["format"] == 2 and "ordinals" not in engine and "digests" not in engine
    assert engine["evaluated"] == sum(events for events, _ in after.values())
    # The digests came along: a rewrite with the same changes is taken as the same.
    tracker.git("commit", "-q", "--amend", "-m", "declare c, raise a (reworded)")
    status, _, err = run(capsys, tracker, "apply")
    assert status == 0 and "skipped" not in err and "history was rewritten" in err
    assert _declared_names(receiver) == ["A", "B", "C"] and tallies(tracker) == after


def test_a_damaged_tally_is_a_clear_error_and_nothing_acts(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from gitops_incidents import gitcmd
    from gitops_incidents.ledger import TALLIES, Ledger

    _declare_and_apply(tracker, capsys, "a")
    ledger = Ledger(tracker.path, "main")
    commit, _ = ledger.read()
    path = gitcmd.fanned(TALLIES, "a")
    damaged = gitcmd.commit_tree(tracker.path, commit, {path: b'{"events": -1}'}, "x")
    assert gitcmd.update_ref(tracker.path, ledger.ref, damaged, commit)
    tracker.write("incidents/b.yaml", incident("B"))
    tracker.write("incidents/a.yaml", incident("A", "SEV-1"))
    tracker.commit("declare b, raise a", when=T0 + 30)
    status, _, err = run(capsys, tracker, "apply")
    assert status == 1 and _declared_names(receiver) == ["A"]
    assert err.startswith(
        f"gitops-incidents: error: {path} of the engine's commit {damaged} cannot be read "
        "(not a tally); restore a good version of its ref with git update-ref "
        "refs/gitops-incidents/<branch> <commit>"
    )
    assert ledger.read()[0] == damaged  # nothing written over it

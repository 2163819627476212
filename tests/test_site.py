"""The site: a real `mkdocs build` with Material of a scripted repository, its
HTML, its downloads and feeds, and the incident page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_incidents import site
from gitops_incidents.cli import main
from gitops_incidents.timeline import Entry, Incident, report, report_markdown
from tests.browser import ARTIFACTS, served
from tests.conftest import IDENTITY, ROOT, Repo
from tests.scenarios import ALICE, BOB, CAROL, T0, lifecycle

# Markup and script in every field a person writes; none of it may run or render.
PAYLOAD = '<script>document.body.dataset.pwned = "script"</script>'
IMG = "<img src=x onerror=\"document.body.dataset.pwned='img'\">"
HOSTILE = f"""\
name: "Broken </title><script>document.title='pwned'</script> pipeline"
severity: SEV-2
summary: |
  {PAYLOAD} **bold** [click](javascript:alert(1)) [docs](https://docs.example.com)
  {IMG}
  <a href="data:text/html,x" onclick="alert(1)">data</a> <a href="mailto:ops@example.com">mail</a>
impact: <iframe src="https://evil.example.com"></iframe> <style>body{{display:none}}</style>
tags: ["<b>bold</b>", prod]
related_resources:
  - id: prefect.work-pool.<img>
    name: "<svg onload=alert(1)>"
roles: {{commander: "<u>mallory</u>"}}
comments:
  - text: |
      {IMG} and {PAYLOAD}
    author: "<i>eve</i>"
"""


def scripted(repo: Repo) -> Repo:
    """The golden lifecycle (edits, comments, a rewrite, deletions), a hostile
    incident, and the project's own MkDocs configuration with commit links."""
    lifecycle(repo)
    repo.write(
        "gitops-incidents.yaml",
        "site: {title: Test incidents, repo_url: 'https://git.example.com/org/ops', forge: gitea}\n"
        "prefect: {ui_url: 'https://prefect.example.com/'}\n",
    )
    repo.write("incidents/hostile.yaml", HOSTILE)
    repo.commit("hostile", ALICE, T0 + 90_000)
    repo.write("incidents/hostile.yaml", HOSTILE.replace("SEV-2", "SEV-1"))
    repo.commit("raise hostile", BOB, T0 + 90_600)
    shutil.copytree(ROOT / "site", repo.path / "site", ignore=shutil.ignore_patterns("build"))
    repo.commit("site", CAROL, T0 + 91_000)
    return repo


@pytest.fixture(scope="module")
def site_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The scripted repository, built once for the tests that only read the site."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in IDENTITY.items():
            patch.setenv(key, value)
        repo = scripted(Repo(tmp_path_factory.mktemp("site") / "tracker"))
        assert main(["--repo", str(repo.path), "build", "--out", str(repo.path / "out")]) == 0
    return repo


@pytest.fixture
def built(site_repo: Repo) -> Path:
    return site_repo.path / "out"


def page(out: Path, relpath: str) -> str:
    return (out / relpath).read_text(encoding="utf-8")


def main_content(html: str) -> str:
    """The article of a Material page: what the generator wrote."""
    return html.split('<article class="md-content__inner md-typeset">', 1)[1].split("</article>")[0]


def test_incident_page_shows_facts_and_the_timeline_oldest_first(built: Path) -> None:
    html = main_content(page(built, "incidents/db.html"))
    assert "#1 - Orders database unreachable" in html
    assert "SEV-1 Critical" in html and "resolved" in html
    assert "<code>prefect.work-pool.k8s-prod</code>" in html
    timeline = html.split('<ol class="gi-timeline" data-search-exclude>', 1)[1]
    whats = re.findall(r'<span class="gi-what">(.*?)</span>', timeline)
    # Prose: who did what, in words.
    assert whats[:4] == [
        "declared the incident at SEV-2",
        "raised the severity from SEV-2 to SEV-1",
        "added the tag database",
        "linked nightly-etl",
    ]
    assert "resolved the incident" in whats and "reopened the incident" in whats
    # Who, and the commit each entry links to.
    assert '<span class="gi-who">Alice Adams</span>' in timeline
    assert re.search(r'href="https://git.example.com/org/ops/commit/[0-9a-f]{40}"', timeline)
    # A comment with its own author and time.
    assert "written for <time" in timeline and '<span class="gi-who">carol</span>' in timeline


def test_history_rewrites_are_flagged(built: Path) -> None:
    html = main_content(page(built, "incidents/db.html"))
    assert "gi-rewrite" in html
    assert (
        "comment edited (history rewritten)" in html
        or "comment removed (history rewritten)" in html
    )


def test_no_markup_or_script_from_files_reaches_the_page(built: Path) -> None:
    html = page(built, "incidents/hostile.html")
    article = main_content(html)
    for tag in ("<script", "<img", "<iframe", "<style", "<svg", "<u>", "<i>", "<b>"):
        assert tag not in article.lower().replace("<b>bold</b>", ""), tag
    assert "onerror" not in article.replace("onerror=&quot;", "") or "&lt;img" in article
    assert "javascript:" not in article and "data:text/html" not in article
    assert (
        'href="https://docs.example.com"' in article and 'href="mailto:ops@example.com"' in article
    )
    assert "<strong>bold</strong>" in article  # Markdown still renders
    # The title, which Material prints without escaping, is escaped by the generator.
    assert re.search(r"<title>#\d+ - Broken &lt;/title&gt;&lt;script&gt;", html)
    assert "<script>document" not in html


def test_home_listings_tags_metrics_and_feeds(built: Path) -> None:
    home = main_content(page(built, "index.html"))
    assert "2 active incident(s); the most severe is SEV-1" in home
    assert 'href="incidents/hostile.html"' in home
    everything = main_content(page(built, "incidents/index.html"))
    assert everything.count("<tr><td>") == 2  # db and hostile; dns was deleted
    assert "deleted the incident (its file was removed)" in main_content(
        page(built, "incidents/dns.html")
    )
    tags = main_content(page(built, "tags/index.html"))
    assert "&lt;b&gt;bold&lt;/b&gt;" in tags and 'href="prod.html"' in tags
    metrics = main_content(page(built, "metrics.html"))
    assert "<svg" in metrics and "SEV-1 Critical" in metrics
    # Incident pages stay out of the navigation of every page.
    assert "incidents/db.html" not in page(built, "metrics.html").split("md-content")[0]
    atom = ElementTree.fromstring((built / "feed.xml").read_bytes())
    titles = [e.text for e in atom.iter("{http://www.w3.org/2005/Atom}title")]
    assert any(t and "Broken </title><script>" in t for t in titles)  # text, escaped as XML
    feed = json.loads((built / "feed.json").read_text())
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert {item["id"] for item in feed["items"]} >= {"db", "hostile"}


def test_reports_for_download_match_the_report_command(
    built: Path, site_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = site_repo
    capsys.readouterr()
    assert main(["--repo", str(repo.path), "report", "hostile", "--format", "json"]) == 0
    assert capsys.readouterr().out == page(built, "reports/hostile.json")
    assert main(["--repo", str(repo.path), "report", "hostile"]) == 0
    markdown = capsys.readouterr().out
    assert markdown == page(built, "reports/hostile.md")
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    report = json.loads(page(built, "reports/db.json"))
    assert report["incident"]["status"] == "active"  # reopened
    assert report["participants"] == sorted(report["participants"])
    assert "Alice Adams" in report["participants"]
    # Declared SEV-2 at T0, raised to SEV-1 ten minutes later, still active at the last
    # event (the comment removed at T0 + 2000).
    assert report["durations"]["time_at_severity_seconds"] == {"SEV-2": 600.0, "SEV-1": 1400.0}
    assert main(["--repo", str(repo.path), "report", "nope"]) == 2


def test_own_pages_are_published_beside_the_generated_ones(repo: Repo) -> None:
    scripted(repo)
    docs = repo.path / "site" / "docs"
    (docs / "runbook.md").write_text("# Runbook\n\nPage the on-call.\n")
    (docs / "index.md").write_text("# A hand-written home page\n")
    out = repo.path / "out"
    assert main(["--repo", str(repo.path), "build", "--out", str(out)]) == 0
    assert "Page the on-call." in page(out, "runbook.html")
    assert "About this site" in page(out, "about.html")
    # The generated home page wins over a hand-written one at the same path.
    assert "hand-written" not in page(out, "index.html")
    assert "Test incidents" in main_content(page(out, "index.html"))
    # Pages go to MkDocs in memory: nothing is written beside the history cache.
    assert sorted(p.name for p in docs.iterdir()) == ["about.md", "index.md", "runbook.md"]
    state = repo.path / ".git" / "gitops-incidents"
    assert [p for p in state.rglob("*") if not p.name.startswith("cache.sqlite3")] == []


def test_a_repository_with_no_site_folder_builds_with_the_built_in_project(
    repo: Repo,
) -> None:
    repo.write("gitops-incidents.yaml", "site: {title: 'Ops <script>alert(1)</script>'}\n")
    repo.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    repo.commit("start", ALICE, T0)
    out = repo.path.parent / "out"
    assert main(["--repo", str(repo.path), "build", "--out", str(out)]) == 0
    home = page(out, "index.html")
    assert "<title>Ops &lt;script&gt;alert(1)&lt;/script&gt; - Ops &lt;script&gt;" in home
    assert "<script>alert" not in home
    assert "Database down" in main_content(page(out, "incidents/db.html"))
    assert (out / "search" / "search_index.json").is_file()  # the search plugin
    assert not (repo.path / "site").exists()  # nothing written into the repository
    # Nothing of the built-in project runs code: a safe build takes it.
    safe = repo.path.parent / "safe"
    assert main(["--repo", str(repo.path), "build", "--safe", "--out", str(safe)]) == 0
    assert (safe / "incidents" / "db.html").is_file()


def test_a_project_of_ones_own_wins_and_a_missing_docs_dir_is_no_error(repo: Repo) -> None:
    repo.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    repo.write(
        "site/mkdocs.yml",
        "site_name: Our own title\nuse_directory_urls: false\ntheme: {name: material}\n"
        "plugins: [gitops-incidents]\n",
    )
    repo.commit("start", ALICE, T0)
    out = repo.path.parent / "out"
    assert main(["--repo", str(repo.path), "build", "--out", str(out)]) == 0
    assert re.search(r"<title>[^<]* - Our own title</title>", page(out, "index.html"))
    assert not (repo.path / "site" / "docs").exists()


@given(
    st.from_regex(site._PLAIN, fullmatch=True),
    st.sampled_from(["", "\n", "  \n", " "]),
)
def test_plain_lines_skip_markdown_and_get_the_same_html(line: str, end: str) -> None:
    assert site.markdown(line + end) == site.convert_markdown(line + end)


@pytest.mark.parametrize(
    "text", ["    indented code", "1. a list", "# heading", "a *b*", "AT&T", "a  \nb", "<u>x</u>"]
)
def test_texts_that_mean_something_to_markdown_are_converted(text: str) -> None:
    assert site.markdown(text) == site.convert_markdown(text) != f"<p>{text}</p>"


# -- in a browser ----------------------------------------------------------------------------


WIDTHS = (1280, 375)  # a laptop, a phone


def width_of_content(visit: Any) -> float:
    """Nine tenths of the article's width: what a chart fills (at least)."""
    return float(visit.js("document.querySelector('article').clientWidth")) * 0.9


OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


def test_in_chromium_the_pages_fit_render_and_run_nothing_injected(built: Path) -> None:
    with served(built) as site_:
        for width in WIDTHS:
            with site_.visit("index.html", width, "home") as home:
                assert home.problems == [] and home.js(OVERFLOW) <= 0
                strips = home.js(
                    "[...document.querySelectorAll('svg.gi-strip')].map("
                    "s => [s.getBoundingClientRect().width, s.querySelectorAll('rect').length])"
                )
                assert strips and all(w > 150 and n == 90 for w, n in strips), strips
                tips = home.js(
                    "[...document.querySelectorAll('svg.gi-strip rect title')].map(t => t.textContent)"
                )
                assert any("#1 Orders database unreachable (SEV-1)" in t for t in tips)
                assert home.js("document.querySelectorAll('.gi-card').length") == 2
                assert home.js("!!document.querySelector('.md-search')")  # Material's scripts ran
                assert home.js("document.body.dataset.pwned") is None  # the hostile names
            for name in ("hostile", "db"):
                with site_.visit(f"incidents/{name}.html", width, f"incident-{name}") as page_:
                    assert page_.problems == [] and page_.js(OVERFLOW) <= 0
                    heights = page_.js(
                        "[...document.querySelectorAll('.gi-timeline > li')]"
                        ".map(li => li.getBoundingClientRect().height)"
                    )
                    assert len(heights) >= 3 and all(h > 10 for h in heights), heights
                    # The small script gave times the reader's zone and "... ago".
                    assert page_.js("document.querySelectorAll('.gi-ago').length") > 0
            with site_.visit("incidents/hostile.html", width) as hostile:
                assert hostile.js("document.body.dataset.pwned") is None
                title = hostile.js("document.title")
                assert "Broken" in title and title != "pwned"
                assert hostile.js("document.querySelectorAll('.gi-timeline > li').length") == 3
            with site_.visit("metrics.html", width, "metrics") as metrics:
                assert metrics.problems == [] and metrics.js(OVERFLOW) <= 0
                assert metrics.js("document.querySelectorAll('figure.gi-figure').length") == 2
                # Nothing resolved stays resolved here: no chart of times to resolve.
                assert metrics.js("document.querySelectorAll('svg.gi-chart').length") == 1
                chart = "document.querySelector('svg.gi-chart').getBoundingClientRect().width"
                assert metrics.js(chart) > width_of_content(metrics)


def test_in_chromium_dark_mode_and_print_take_their_styles(built: Path) -> None:
    with served(built) as site_:
        with site_.visit("index.html", 1280, "home-dark", scheme="dark") as home:
            assert home.js("document.body.getAttribute('data-md-color-scheme')") == "slate"
            # The severities' colours are the dark scheme's.
            colour = "getComputedStyle(document.body).getPropertyValue('--gi-sev-0').trim()"
            assert home.js(colour) == "#ef5350" and home.problems == []
        with site_.visit("incidents/db.html", 1280) as page_:
            page_.page.emulate_media(media="print")
            shown = "getComputedStyle(document.querySelector('{}')).display"
            assert page_.js(shown.format(".md-header")) == "none"
            assert page_.js(shown.format(".gi-actions")) == "none"
            assert page_.js(shown.format(".gi-timeline")) != "none"
            ARTIFACTS.mkdir(exist_ok=True)
            page_.page.pdf(path=str(ARTIFACTS / "incident-db.pdf"))
            assert page_.problems == []


def test_automation_actions_from_the_ledger_are_in_the_timeline(repo: Repo) -> None:
    repo.write(
        "automations/ack.yaml",
        "name: Acknowledge\n"
        "trigger: {expect: [prefect-cloud.incident.declared], posture: Reactive}\n"
        "actions:\n"
        "  - {type: comment-on-incident, source: inferred, text: 'Seen by {{ automation.name }}.'}\n",
    )
    repo.commit("automation", ALICE, T0)
    assert main(["--repo", str(repo.path), "apply"]) == 0
    repo.write("incidents/x.yaml", "name: X\nseverity: SEV-3\n")
    repo.commit("declare x", BOB, T0 + 60)
    assert main(["--repo", str(repo.path), "apply"]) == 0
    shutil.copytree(ROOT / "site", repo.path / "site", ignore=shutil.ignore_patterns("build"))
    out = repo.path / "out"
    assert main(["--repo", str(repo.path), "build", "--out", str(out)]) == 0
    html = main_content(page(out, "incidents/x.html"))
    entry = re.search(r'<li class="gi-entry gi-automation">(.*?)</li>', html, re.S)
    assert entry is not None
    assert "comment-on-incident: done" in entry.group(1)
    assert "automation Acknowledge" in entry.group(1)
    assert "Seen by Acknowledge." in html  # the bot's comment, from its commit
    assert '<span class="gi-who">gitops-incidents</span>' in html


def test_serve_previews_and_rebuilds_on_a_commit(repo: Repo) -> None:
    scripted(repo)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(repo.path), "serve",
         "--dev-addr", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        home = _fetch_when(port, "index.html", lambda text: "Test incidents" in text)
        assert "2 active incident(s)" in home
        repo.write("incidents/new.yaml", "name: Served fresh\nseverity: SEV-1\n")
        repo.commit("declare new", ALICE, T0 + 95_000)
        home = _fetch_when(port, "index.html", lambda text: "Served fresh" in text)
        assert "3 active incident(s)" in home
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"serving the site on http://127.0.0.1:{port}/" in err.decode()


def _fetch_when(port: int, path: str, ready: Callable[[str], bool], timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as reply:
                text = str(reply.read().decode())
            if ready(text):
                return text
        except OSError:
            pass  # not listening yet, or rebuilding
        time.sleep(0.5)
    raise AssertionError(f"http://127.0.0.1:{port}/{path} never became ready: {text[:200]}")


def test_search_index_has_the_facts_but_not_the_timelines(built: Path) -> None:
    index = json.loads(page(built, "search/search_index.json"))
    text = json.dumps(index)
    assert "Flow runs fail with connection refused" in text  # db's summary
    assert "Failing over to replica db-2" not in text  # a comment, in the timeline
    assert "Orders database unreachable" in text


def test_time_at_severity_splits_at_changes_and_is_unknown_for_one_made_later() -> None:
    """A change inside the span splits it. A backfilled escalation (committed after the
    incident ended) happened at a time nobody knows: both severities are unknown."""
    declared = Entry(at="2026-11-27T12:00:00Z", kind="declared", title="d", severity="SEV-2")
    later = Entry(at="2026-11-27T13:00:00Z", kind="updated.severity", title="s", severity="SEV-1")
    inside = Entry(at="2026-11-20T09:20:00Z", kind="updated.severity", title="s", severity="SEV-1")
    base = Incident(
        id="x", number=1, name="x", severity="SEV-1", severity_label="", status="resolved",
        start_time="2026-11-20T09:00:00Z", end_time="2026-11-20T10:00:00Z", duration=3600.0,
        summary="", impact="", tags=[], resources=[], roles={},
    )  # fmt: skip
    spans = report(replace(base, entries=[declared, later]))["durations"]
    assert spans["time_at_severity_seconds"] == {"SEV-2": None, "SEV-1": None}
    backfilled = replace(base, entries=[declared, later])
    text = report_markdown(backfilled, report(backfilled))
    assert "- Time at SEV-1: unknown (changed after the incident ended)" in text
    spans = report(replace(base, entries=[declared, inside]))["durations"]
    assert spans["time_at_severity_seconds"] == {"SEV-2": 1200.0, "SEV-1": 2400.0}


FORGES = [
    # repo_url, forge, commit, edit, new file (its start)
    ("https://github.com/org/ops", None, "https://github.com/org/ops/commit/abc",
     "https://github.com/org/ops/edit/main/incidents/db.yaml",
     "https://github.com/org/ops/new/main/incidents?filename=new-incident.yaml&value="),
    ("https://gitlab.example.com/org/ops/", None, "https://gitlab.example.com/org/ops/-/commit/abc",
     "https://gitlab.example.com/org/ops/-/edit/main/incidents/db.yaml",
     "https://gitlab.example.com/org/ops/-/new/main/incidents?file_name=new-incident.yaml&content="),
    ("https://codeberg.org/org/ops", None, "https://codeberg.org/org/ops/commit/abc",
     "https://codeberg.org/org/ops/_edit/main/incidents/db.yaml",
     "https://codeberg.org/org/ops/_new/main/incidents/?filename=new-incident.yaml&value="),
    ("https://git.example.com/org/ops", "gitlab", "https://git.example.com/org/ops/-/commit/abc",
     "https://git.example.com/org/ops/-/edit/main/incidents/db.yaml",
     "https://git.example.com/org/ops/-/new/main/incidents?file_name=new-incident.yaml&content="),
    # An unknown forge: commit links as GitHub spells them, and no editor.
    ("https://git.example.com/org/ops", None, "https://git.example.com/org/ops/commit/abc", None, None),
    (None, None, None, None, None),
]  # fmt: skip


@pytest.mark.parametrize(("repo_url", "kind", "commit", "edit", "new"), FORGES)
def test_forge_links(
    repo_url: str | None, kind: str | None, commit: str | None, edit: str | None, new: str | None
) -> None:
    from gitops_incidents.forge import Forge

    forge = Forge.of(repo_url, "main", kind)
    assert forge.commit("abc") == commit
    assert forge.edit("incidents/db.yaml") == edit
    made = forge.new_file("incidents", "new-incident.yaml", "name: x & y\n")
    assert made == (new and new + "name%3A+x+%26+y%0A")


PREFECT_PAGES = [
    ("prefect.work-pool.6f2c", "k8s-prod", "https://ui.example.com/work-pools/work-pool/k8s-prod"),
    ("prefect.work-pool.6f2c", "", "https://ui.example.com/work-pools/work-pool/6f2c"),
    ("prefect.deployment.9a1b", "nightly", "https://ui.example.com/deployments/deployment/9a1b"),
    ("prefect.flow-run.77", "", "https://ui.example.com/runs/flow-run/77"),
    ("prefect.flow.5", "", "https://ui.example.com/flows/flow/5"),
    ("prefect.work-pool.a b/c", "", "https://ui.example.com/work-pools/work-pool/a%20b%2Fc"),
    ("prefect.block-document.1", "", None),  # no page of its own
    ("aws.s3.bucket", "", None),
]  # fmt: skip


@pytest.mark.parametrize(("resource", "name", "url"), PREFECT_PAGES)
def test_prefect_ui_links(resource: str, name: str, url: str | None) -> None:
    from gitops_incidents.models import PrefectConfig
    from gitops_incidents.prefect.links import resource_url, ui_root

    root = ui_root(PrefectConfig(ui_url="https://ui.example.com/"))
    assert resource_url(root, resource, name) == url
    cloud = ui_root(PrefectConfig(cloud_account="a1", cloud_workspace="w2"))
    assert cloud == "https://app.prefect.cloud/account/a1/workspace/w2"
    assert resource_url(ui_root(PrefectConfig()), resource, name) is None


def test_the_site_links_the_forge_and_prefect_and_publishes_its_status(built: Path) -> None:
    home = main_content(page(built, "index.html"))
    assert '<div class="admonition danger gi-overall gi-sev-0">' in home  # SEV-1 active
    declare = re.search(r'<a class="md-button md-button--primary" href="([^"]+)"', home)
    assert declare is not None
    assert declare.group(1).startswith(
        "https://git.example.com/org/ops/_new/main/incidents/?filename=new-incident.yaml&amp;value=name%3A"
    )
    assert 'href="https://prefect.example.com/work-pools/work-pool/k8s-prod"' in home
    db = main_content(page(built, "incidents/db.html"))
    assert 'href="https://git.example.com/org/ops/_edit/main/incidents/db.yaml"' in db
    assert (
        '<time datetime="2026-11-18T11:06:40Z" title="2026-11-18T11:06:40Z">18 Nov 2026, 11:06 UTC</time>'
        in db
    )
    assert "<dt>Time at SEV-2</dt><dd>10 min</dd>" in db
    # The file's own text, escaped in the badge's and the endpoint's words.
    assert json.loads(page(built, "status.json")) == {
        "schemaVersion": 1, "label": "incidents", "message": "2 active, SEV-1", "color": "#e05d44",
    }  # fmt: skip
    badge = ElementTree.fromstring((built / "status.svg").read_bytes())
    assert "incidents: 2 active, SEV-1" in "".join(badge.itertext())


RANKS = {"SEV-1": 0, "SEV-2": 1, "SEV-3": 2}
SENTENCES = [
    ("updated.severity", "SEV-2", "SEV-1", "raised the severity from SEV-2 to SEV-1"),
    ("updated.severity", "SEV-1", "SEV-3", "lowered the severity from SEV-1 to SEV-3"),
    ("updated.severity", "SEV-1", "SEV-9", "changed the severity from SEV-1 to SEV-9"),
    ("updated.roles", {"commander": "alice"}, {"commander": "alice", "scribe": "bob"},
     "changed the roles: bob became scribe"),
    ("updated.roles", {"commander": ["alice", "carol"]}, {"commander": "bob"},
     "changed the roles: bob became commander; alice is no longer commander; carol is no longer commander"),
    ("updated.tags", ["a"], ["b", "c"], "added the tags b, c and removed the tag a"),
    ("updated.related_resources", [], [{"id": "prefect.work-pool.1", "name": "k8s"}], "linked k8s"),
    ("updated.related_resources", [{"id": "prefect.flow.1"}], [], "unlinked prefect.flow.1"),
    ("updated.start_time", "2026-11-20T09:00:00Z", "2026-11-20T08:30:00Z",
     "set the start time to 20 Nov 2026, 08:30 UTC (was 20 Nov 2026, 09:00 UTC)"),
    ("updated.end_time", "2026-11-20T09:00:00Z", None, "cleared the end time"),
    ("updated.name", "Old", "New", "renamed the incident from “Old” to “New”"),
    ("updated.summary", "", "x", "wrote the summary"),
    ("updated.impact", "a b", "a c", "edited the impact"),
    ("updated.metadata", {}, {"a": 1}, "changed the metadata"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "old", "new", "said"), SENTENCES)
def test_timeline_entries_read_as_sentences(kind: str, old: object, new: object, said: str) -> None:
    from gitops_incidents.timeline import sentence

    entry = Entry(at="2026-11-20T09:00:00Z", kind=kind, title="t", old=old, new=new)
    assert sentence(entry, RANKS) == said


def test_a_change_written_up_after_the_end_is_marked_and_its_time_unknown() -> None:
    from gitops_incidents.models import Config

    entries = [
        Entry(at="2026-11-20T09:00:00Z", kind="declared", title="d", severity="SEV-2", actor="a"),
        Entry(at="2026-11-20T10:00:00Z", kind="resolved", title="r", actor="a"),
        Entry(at="2026-11-27T13:00:00Z", kind="updated.severity", title="s", severity="SEV-1",
              old="SEV-2", new="SEV-1", actor="b"),
        Entry(at="2026-11-27T14:00:00Z", kind="updated.summary", title="s", old="It broke.",
              new="It broke <badly>.", actor="b"),
    ]  # fmt: skip
    item = Incident(
        id="x", number=1, name="x", severity="SEV-1", severity_label="", status="resolved",
        start_time="2026-11-20T09:00:00Z", end_time="2026-11-20T10:00:00Z", duration=3600.0,
        summary="", impact="", tags=[], resources=[], roles={}, entries=entries, path="incidents/x.yaml",
    )  # fmt: skip
    built = site.generate([item], Config(), now=1_795_000_000).pages["incidents/x.md"]
    entries_html = built.split('<ol class="gi-timeline"', 1)[1].split("<li ")[1:]
    assert [("recorded later" in e) for e in entries_html] == [False, False, True, True]
    assert 'class="gi-entry gi-updated-severity gi-later"' in entries_html[2]
    assert "<dt>Time at SEV-1</dt><dd>unknown (changed after the incident ended)</dd>" in built
    # What changed in the summary, word by word, escaped.
    assert '<p class="gi-diff">It <del>broke.</del> <ins>broke &lt;badly&gt;.</ins></p>' in built


def test_the_declare_button_s_template_is_a_valid_incident(tmp_path: Path) -> None:
    from gitops_incidents.models import Config

    text = site.TEMPLATE.format(severity=Config().severities[-1].id)
    (tmp_path / "incidents").mkdir()
    made = tmp_path / "incidents" / "new-incident.yaml"
    made.write_text(text)
    assert main(["--repo", str(tmp_path), "validate", str(made)]) == 0


@pytest.mark.parametrize(
    ("rank", "kind"), [(0, "danger"), (1, "danger"), (2, "warning"), (3, "info"), (None, "info")]
)
def test_the_overall_status_alarms_by_the_worst_active_severity(
    rank: int | None, kind: str
) -> None:
    assert site._alarm(rank) == kind

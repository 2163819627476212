"""The published site's content (SPEC 6): Markdown pages with front matter, and
the files offered for download, generated from the repository and its history.

The generator owns all content; a builder (MkDocs with Material, through the
thin `mkdocs_plugin`) only turns the pages into HTML. Every page is rendered
by Jinja with autoescaping, so text from files is escaped; the Markdown fields
(summaries, impact, comments) are rendered here and sanitized by nh3, with
links to http(s) and mailto only. Pages hold raw HTML blocks, which Markdown
passes through as they are.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import html
import re
import statistics
import time
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import markdown as markdown_lib
import nh3
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from gitops_incidents import charts, feeds, gitcmd, tracker
from gitops_incidents.forge import Forge
from gitops_incidents.history import incident_histories, open_cache
from gitops_incidents.ledger import Ledger, State
from gitops_incidents.models import Config
from gitops_incidents.prefect.links import kind_and_id, resource_url, ui_root
from gitops_incidents.repository import config_at, default_until
from gitops_incidents.timeline import (
    Entry,
    Incident,
    automation_entries,
    duration_text,
    human_time,
    impact_rows,
    incident,
    report,
    report_json,
    report_markdown,
    sentence,
    severity_time_text,
    severity_verb,
    who,
)
from gitops_incidents.triggers import timestamp

RECENT = 10  # resolved incidents on the home page
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em", "h3", "h4",
    "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
STYLE = "assets/gitops-incidents.css"
SCRIPT = "assets/gitops-incidents.js"
STRIP_DAYS = 90
DAY = 86400
# What a new incident file starts as, on the forge's new-file page.
TEMPLATE = """\
name: What is broken, in a few words
severity: {severity}
summary: |
  What people see, and since when.
# related_resources:
#   - {{id: prefect.work-pool.<id>, name: <the pool's name>}}
# roles: {{commander: <you>}}
"""

_ENV = Environment(
    loader=PackageLoader("gitops_incidents", "site_templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


# One converter, reset between texts: building one per text costs more than converting.
_CONVERTER = markdown_lib.Markdown(extensions=["tables", "fenced_code", "sane_lists"])


# One line of words, digits and punctuation that means nothing to Markdown (no
# markup, entity, escape or list marker): most comments. It is its own HTML.
_PLAIN = re.compile(r"[A-Za-z](?:[A-Za-z0-9 ,.;:'\"()/?%$@+=-]*[A-Za-z0-9,.;:'\"()/?%$@+=-])?")


@functools.lru_cache(maxsize=8192)
def markdown(text: str) -> Markup:
    """A Markdown field as sanitized HTML: no script, no event handler, no style, and
    links only to http(s) and mailto."""
    line = text.removesuffix("\n")
    if _PLAIN.fullmatch(line):
        return Markup(f"<p>{line}</p>")  # what converting and sanitizing would give
    return convert_markdown(text)


def convert_markdown(text: str) -> Markup:
    rendered = _CONVERTER.reset().convert(text)
    clean = nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # nh3's output: sanitized above


@dataclass
class Site:
    pages: dict[str, str] = field(default_factory=dict)  # docs-relative path -> Markdown
    files: dict[str, bytes] = field(default_factory=dict)  # site-relative path -> bytes


def tag_slug(tag: str) -> str:
    """A file name for a tag: readable, and distinct for distinct tags."""
    slug = re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")[:60] or "tag"
    if slug == tag and slug not in tracker.SITE_PAGES:  # a tag named index: not tags/index
        return slug
    return f"{slug}-{hashlib.sha1(tag.encode()).hexdigest()[:6]}"


def from_repository(root: Path, site_url: str = "") -> Site:
    """The site of the tracker at `root`, as its branch stands."""
    config, items = read(root, default_until(root))
    return generate(items, config, site_url)


def read(root: Path, until: str) -> tuple[Config, list[Incident]]:
    """The configuration at `until`, and every incident as the site shows it: one walk
    of history, and the ledger."""
    config = config_at(root, until)
    branch = until.removeprefix("refs/heads/")
    try:
        _, ledger = Ledger(root, branch).read()
        state: State | None = ledger
    except gitcmd.GitError:
        state = None  # a damaged ledger: pages without automation entries
    actions = automation_entries(config, state)
    items = [
        incident(h, config, actions.get(h.state.id, [])) for h in incident_histories(root, until)
    ]
    from gitops_incidents.prefect import impact  # Prefect is imported if it is asked

    cache = open_cache(root)
    try:
        figures = impact.for_incidents(
            cache, [i for i in items if i.status != "deleted"], time.time()
        )
    finally:
        cache.close()
    for item in items:
        item.prefect_impact = figures.get(item.id)
    return config, items


@functools.lru_cache(maxsize=65536)
def _when(at: str | None) -> Markup:
    """A time for people, with the exact one in `datetime` and on hover (cached: a
    commit's time recurs on every entry it made)."""
    if not at:
        return Markup("ongoing")
    exact = escape(at)
    return Markup(f'<time datetime="{exact}" title="{exact}">{human_time(at)}</time>')


_ENV.filters["when"] = _when


ICONS = {
    "declared": "alert-circle", "updated.severity": "arrow-up-bold",
    "updated.roles": "account-switch", "updated.tags": "tag",
    "updated.related_resources": "link-variant", "updated.summary": "file-document-edit",
    "updated.impact": "file-document-edit", "updated.name": "rename",
    "comment.added": "comment-text", "comment.edited": "comment-alert",
    "comment.removed": "comment-alert", "resolved": "check-circle", "reopened": "restore",
    "deleted": "delete", "automation": "robot",
}  # fmt: skip
OTHER_ICONS = ("pencil", "arrow-down-bold")


def _icon_css() -> str:
    """A class per icon that the timeline uses, each one of Material's bundled icons
    (material/templates/.icons) as a CSS mask, the way Material draws its admonitions'
    icons: a page carries a class name, not the SVG."""
    rules = []
    folder = resources.files("material") / "templates" / ".icons" / "material"
    for name in sorted({*ICONS.values(), *OTHER_ICONS}):
        try:
            svg = (folder / f"{name}.svg").read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue  # another Material release without it: no icon, the words stay
        data = urllib.parse.quote(svg, safe=" =:/")
        url = f"data:image/svg+xml;charset=utf-8,{data}"
        rules.append(f'.gi-icon-{name} {{ --gi-icon: url("{url}"); }}')
    return "\n".join(rules) + "\n"


def _entry_icon(entry: Entry, ranks: dict[str, int]) -> str:
    """The class of an entry's icon."""
    name = ICONS.get(entry.kind, "pencil")
    if entry.kind == "updated.severity" and severity_verb(entry.old, entry.new, ranks) == "lowered":
        name = "arrow-down-bold"
    return f"gi-icon-{name}"


@dataclass(frozen=True)
class _Line:
    """A timeline entry as its page shows it, worked out here: a template's calls into
    Python cost several times what the same work costs here."""

    entry: Entry
    who: str
    what: str
    icon: str
    later: bool
    commit_url: str | None
    diff: Markup | None


def _lines(item: Incident, ranks: dict[str, int], forge: Forge) -> list[_Line]:
    return [
        _Line(
            entry,
            who(entry),
            sentence(entry, ranks),
            _entry_icon(entry, ranks),
            item.recorded_later(entry),
            forge.commit(entry.commit) if entry.commit else None,
            _diff(entry.old, entry.new) if entry.kind in DIFFED else None,
        )
        for entry in item.entries
    ]


DIFFED = ("updated.summary", "updated.impact")  # fields whose change shows as a diff


def _diff(old: Any, new: Any) -> Markup:
    """What changed in a text, word by word: removed words struck, added ones marked."""
    before, after = str(old or "").split(), str(new or "").split()
    parts: list[Markup] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            kept = before[a1:a2]
            # Long unchanged stretches shrink to their ends.
            if len(kept) > 12:
                kept = [*kept[:5], "…", *kept[-5:]]
            text = " ".join(kept)
            parts.append(Markup("{}").format(text))
        if op in ("delete", "replace"):
            parts.append(Markup("<del>{}</del>").format(" ".join(before[a1:a2])))
        if op in ("insert", "replace"):
            parts.append(Markup("<ins>{}</ins>").format(" ".join(after[b1:b2])))
    return Markup('<p class="gi-diff">{}</p>').format(Markup(" ").join(parts))


def _resource(resource: dict[str, str], ui: str | None) -> dict[str, Any]:
    """A linked resource as a person reads it: its name, its kind, its Prefect page."""
    parsed = kind_and_id(resource["id"])
    return {
        "id": resource["id"],
        "name": resource.get("name") or (parsed[1] if parsed else resource["id"]),
        "kind": parsed[0].replace("-", " ") if parsed else "",
        "url": resource_url(ui, resource["id"], resource.get("name", "")),
    }


def _days(now: float) -> list[float]:
    """The starts (UTC midnights) of the strips' days, oldest first, today last."""
    today = now - now % DAY
    return [today - DAY * n for n in range(STRIP_DAYS - 1, -1, -1)]


def _strips(
    shown: list[Incident], ranks: dict[str, int], now: float, ui: str | None
) -> list[dict[str, Any]]:
    """Per resource that ever had an incident: its last 90 days, each coloured by the
    worst severity in force that day, those with an active incident first."""
    days = _days(now)
    first = days[0]
    by_resource: dict[str, list[tuple[Incident, list[tuple[float, float, str]]]]] = {}
    named: dict[str, dict[str, str]] = {}
    for item in shown:
        spans = item.severity_spans(now)
        for resource in item.resources:
            by_resource.setdefault(resource["id"], []).append((item, spans))
            if resource.get("name") or resource["id"] not in named:
                named[resource["id"]] = resource
    strips = []
    for resource_id, touching in by_resource.items():
        worst: list[int | None] = [None] * len(days)
        names: list[dict[str, None]] = [{} for _ in days]  # ordered sets
        for item, spans in touching:
            for since, until, severity in spans:
                if until < first:
                    continue
                rank = ranks.get(severity, len(ranks))
                start = max(int((since - first) // DAY), 0)
                stop = min(int((max(until, since + 1) - 1 - first) // DAY), len(days) - 1)
                for index in range(start, stop + 1):
                    if worst[index] is None or rank < worst[index]:  # type: ignore[operator]
                        worst[index] = rank
                    names[index][f"#{item.number} {item.name} ({severity})"] = None
        view = _resource(named[resource_id], ui)
        cells = [
            charts.Day(time.strftime("%d %b %Y", time.gmtime(day)), rank, list(said))
            for day, rank, said in zip(days, worst, names, strict=True)
        ]
        active = any(item.status == "active" for item, _ in touching)
        latest = max(timestamp(item.start_time) for item, _ in touching)
        strips.append({**view, "svg": charts.strip(view["name"], cells), "active": active,
                       "latest": latest})  # fmt: skip
    strips.sort(key=lambda s: (not s["active"], -s["latest"], s["name"]))
    return strips


def _affected(
    active: list[Incident], ranks: dict[str, int], ui: str | None
) -> list[dict[str, Any]]:
    """Every resource an active incident links, with its worst severity, worst first."""
    found: dict[str, dict[str, Any]] = {}
    for item in active:
        rank = ranks.get(item.severity, len(ranks))
        for resource in item.resources:
            seen = found.setdefault(
                resource["id"], {**_resource(resource, ui), "rank": rank, "severity": item.severity,
                                 "incidents": []},
            )  # fmt: skip
            if rank < seen["rank"]:
                seen["rank"], seen["severity"] = rank, item.severity
            seen["incidents"].append(item)
    return sorted(found.values(), key=lambda r: (r["rank"], r["name"]))


def generate(
    items: list[Incident], config: Config, site_url: str = "", now: float | None = None
) -> Site:
    """The site of `items`; `now`: the time the strips and the status end at (the build's)."""
    now = time.time() if now is None else now
    site = Site()
    forge = Forge.of(config.site.repo_url, config.branch, config.site.forge)
    ui = ui_root(config.prefect)
    durations = {i.id: duration_text(i.duration) if i.end_time else "ongoing" for i in items}
    slugs = {tag: tag_slug(tag) for item in items for tag in item.tags}
    shown = [i for i in items if i.status != "deleted"]
    ranks = {s.id: n for n, s in enumerate(config.severities)}
    labels = {s.id: s.label for s in config.severities}
    declare_url = forge.new_file(
        tracker.INCIDENTS, "new-incident.yaml", TEMPLATE.format(severity=config.severities[-1].id)
    )

    def render(template: str, path: str, prefix: str, title: str, **values: Any) -> None:
        # Material prints front matter (the page title, the description) as it is, in
        # <title>, the header and the search index: it is escaped here, once for all pages.
        front = {"title": html.escape(title)}
        if "description" in values:
            front["description"] = html.escape(values.pop("description"))
        site.pages[path] = _ENV.get_template(template).render(
            prefix=prefix, durations=durations, front=front, title=title, ranks=ranks,
            severity_class=lambda severity: charts.severity_class(ranks.get(severity)),
            labels=labels, declare_url=declare_url, **values,
        )  # fmt: skip

    for item in items:
        data = report(item)
        render(
            "incident.md",
            f"incidents/{item.id}.md",
            "../",
            item.title,
            item=item,
            description=f"{item.severity} {item.status}: {item.name}",
            duration=durations[item.id],
            summary=markdown(item.summary) if item.summary else Markup("<p>None.</p>"),
            impact=markdown(item.impact) if item.impact else Markup("<p>Not assessed yet.</p>"),
            tag_slugs=slugs,
            forge=forge,
            markdown=markdown,
            impact_rows=impact_rows,
            resources=[{**_resource(r, ui), "role": r["role"]} for r in item.resources],
            at_severity=[
                (severity, severity_time_text(seconds))
                for severity, seconds in data["durations"]["time_at_severity_seconds"].items()
            ],
            lines=_lines(item, ranks, forge),
            edit_url=forge.edit(item.path) if item.path else None,
        )
        site.files[f"reports/{item.id}.md"] = report_markdown(item, data).encode()
        site.files[f"reports/{item.id}.json"] = report_json(data).encode()

    active = sorted(
        (i for i in shown if i.status == "active"),
        key=lambda i: (ranks.get(i.severity, len(ranks)), -i.number),
    )
    resolved = sorted(
        (i for i in shown if i.status == "resolved"),
        key=lambda i: i.end_time or "",
        reverse=True,
    )
    worst = active[0] if active else None
    overall = (
        f"{len(active)} active incident(s); the most severe is {worst.severity}"
        if worst
        else "No active incidents."
    )
    render(
        "home.md",
        "index.md",
        "",
        config.site.title,
        overall=overall,
        since=min((i.start_time for i in active), default=None),
        alarm=_alarm(ranks.get(worst.severity, len(ranks)) if worst else None),
        affected=_affected(active, ranks, ui),
        strips=_strips(shown, ranks, now, ui),
        active=active,
        resolved=resolved[:RECENT],
    )
    render(
        "all.md",
        "incidents/index.md",
        "../",
        "All incidents",
        items=sorted(shown, key=lambda i: -i.number),
    )

    tagged: dict[str, list[Incident]] = {}
    for item in shown:
        for tag in item.tags:
            tagged.setdefault(tag, []).append(item)
    render(
        "tags.md",
        "tags/index.md",
        "../",
        "Tags",
        tags=[(tag, slugs[tag], len(tagged[tag])) for tag in sorted(tagged)],
    )
    for tag, members in tagged.items():
        render(
            "tag.md",
            f"tags/{slugs[tag]}.md",
            "../",
            f"Tag: {tag}",
            tag=tag,
            items=sorted(members, key=lambda i: -i.number),
        )
    render("metrics.md", "metrics.md", "", "Metrics", **_metrics(shown, config))
    for path, source in ((STYLE, "style.css"), (SCRIPT, "script.js")):
        site.pages[path] = _ENV.loader.get_source(_ENV, source)[0]  # type: ignore[union-attr]
    site.pages[STYLE] += _icon_css()
    site.files["feed.xml"] = feeds.atom(shown, config, site_url)
    site.files["feed.json"] = feeds.json_feed(shown, config, site_url)
    site.files.update(feeds.status_files(active, ranks))
    return site


def _alarm(rank: int | None) -> str:
    """Material's admonition for the worst active severity's place on the scale: the
    top two alarm, the third warns, the rest inform."""
    if rank is None or rank > 2:
        return "info"
    return "warning" if rank == 2 else "danger"


def _metrics(items: list[Incident], config: Config) -> dict[str, Any]:
    rows = []
    for severity in config.severities:
        spans = [i.duration for i in items if i.severity == severity.id and i.duration is not None]
        rows.append(
            {
                "severity": f"{severity.id} {severity.label}",
                "count": len(spans),
                "median": duration_text(statistics.median(spans)) if spans else "-",
                "mean": duration_text(statistics.fmean(spans)) if spans else "-",
                "longest": duration_text(max(spans)) if spans else "-",
            }
        )
    months = sorted({i.start_time[:7] for i in items})
    labels = [time.strftime("%b %Y", time.strptime(month, "%Y-%m")) for month in months]
    declared = []
    resolve = []
    for rank, severity in enumerate(config.severities):
        mine = [i for i in items if i.severity == severity.id]
        per_month = dict.fromkeys(months, 0.0)
        hours: dict[str, list[float]] = {month: [] for month in months}
        for item in mine:
            per_month[item.start_time[:7]] += 1
            if item.duration is not None:
                hours[item.start_time[:7]].append(item.duration / 3600)
        name = f"{severity.id} {severity.label}"
        if mine:
            declared.append(charts.Series(name, rank, [per_month[m] for m in months]))
        if any(hours.values()):
            medians = [statistics.median(hours[m]) if hours[m] else None for m in months]
            resolve.append(charts.Series(name, rank, medians))
    return {
        "resolve": rows,
        "declared_chart": charts.chart(
            "Incidents declared per month, by severity", labels, declared,
            unit="incidents", stacked=True,
        ),
        "resolve_chart": charts.chart(
            "Median time to resolve, by the month the incident started", labels, resolve,
            unit="hours", stacked=False,
        ),
    }  # fmt: skip

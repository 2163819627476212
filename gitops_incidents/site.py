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

import functools
import hashlib
import html
import json
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import markdown as markdown_lib
import nh3
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from gitops_incidents import gitcmd, tracker
from gitops_incidents.history import incident_histories, open_cache
from gitops_incidents.ledger import Ledger, State
from gitops_incidents.models import Config
from gitops_incidents.repository import config_at, default_until
from gitops_incidents.timeline import (
    Incident,
    automation_entries,
    duration_text,
    impact_rows,
    incident,
    report,
    report_json,
    report_markdown,
)

RECENT = 10  # resolved incidents on the home page
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em", "h3", "h4",
    "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
STYLE = "assets/gitops-incidents.css"

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


def generate(items: list[Incident], config: Config, site_url: str = "") -> Site:
    site = Site()
    repo_url = (config.site.repo_url or "").rstrip("/")
    durations = {i.id: duration_text(i.duration) if i.end_time else "ongoing" for i in items}
    slugs = {tag: tag_slug(tag) for item in items for tag in item.tags}
    shown = [i for i in items if i.status != "deleted"]
    order = {s.id: n for n, s in enumerate(config.severities)}

    def render(template: str, path: str, prefix: str, title: str, **values: Any) -> None:
        # Material prints front matter (the page title, the description) as it is, in
        # <title>, the header and the search index: it is escaped here, once for all pages.
        front = {"title": html.escape(title)}
        if "description" in values:
            front["description"] = html.escape(values.pop("description"))
        site.pages[path] = _ENV.get_template(template).render(
            prefix=prefix, durations=durations, front=front, title=title, **values
        )

    for item in items:
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
            repo_url=repo_url,
            markdown=markdown,
            impact_rows=impact_rows,
        )
        data = report(item)
        site.files[f"reports/{item.id}.md"] = report_markdown(item, data).encode()
        site.files[f"reports/{item.id}.json"] = report_json(data).encode()

    active = [i for i in shown if i.status == "active"]
    by_severity: dict[str, list[Incident]] = {}
    for item in sorted(active, key=lambda i: (order.get(i.severity, len(order)), -i.number)):
        by_severity.setdefault(item.severity, []).append(item)
    resolved = sorted(
        (i for i in shown if i.status == "resolved"),
        key=lambda i: i.end_time or "",
        reverse=True,
    )
    worst = min(active, key=lambda i: order.get(i.severity, len(order)), default=None)
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
        active=list(by_severity.items()),
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
    site.pages[STYLE] = _ENV.loader.get_source(_ENV, "style.css")[0]  # type: ignore[union-attr]
    site.files["feed.xml"] = _atom(shown, config, site_url)
    site.files["feed.json"] = _json_feed(shown, config, site_url)
    return site


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
    months = sorted(Counter(i.start_time[:7] for i in items).items())
    height, width = 160, max(40 * len(months), 200)
    top = max((count for _, count in months), default=1)
    bars = [
        {
            "x": 40 * n + 6,
            "w": 28,
            "h": round(count / top * (height - 30)),
            "y": height - 16 - round(count / top * (height - 30)),
            "month": month,
            "count": count,
            "label": month[2:].replace("-", "/"),
        }
        for n, (month, count) in enumerate(months)
    ]
    return {
        "resolve": rows,
        "months": months,
        "chart": {"width": width, "height": height, "bars": bars},
    }


def _link(site_url: str, path: str) -> str:
    return f"{site_url.rstrip('/')}/{path}" if site_url else path


# What XML 1.0 cannot hold at all, not even escaped: control characters, lone
# surrogates, U+FFFE and U+FFFF. A name may have them; the feed must stay well-formed.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _atom(items: list[Incident], config: Config, site_url: str) -> bytes:
    """An Atom feed: an entry per incident, updated by its last change."""

    def add(parent: ElementTree.Element, tag: str, text: str | None = None, **attrs: str) -> Any:
        element = ElementTree.SubElement(parent, tag, attrs)
        if text is not None:
            element.text = _NOT_XML.sub("\ufffd", text)
        return element

    feed = ElementTree.Element("feed", xmlns="http://www.w3.org/2005/Atom")
    add(feed, "title", config.site.title)
    add(feed, "id", _link(site_url, "feed.xml"))
    add(feed, "updated", max((_updated(i) for i in items), default="1970-01-01T00:00:00Z"))
    for item in sorted(items, key=_updated, reverse=True):
        entry = add(feed, "entry")
        add(entry, "title", f"{item.title} ({item.severity}, {item.status})")
        add(entry, "id", f"urn:gitops-incidents:{item.id}")
        add(entry, "updated", _updated(item))
        add(entry, "published", item.start_time)
        add(entry, "link", href=_link(site_url, f"incidents/{item.id}.html"))
        add(entry, "summary", item.summary or item.name)
        author = add(entry, "author")
        add(author, "name", next((e.actor for e in item.entries if e.actor), "unknown"))
    return bytes(ElementTree.tostring(feed, encoding="utf-8", xml_declaration=True))


def _updated(item: Incident) -> str:
    return item.entries[-1].at if item.entries else item.start_time


def _json_feed(items: list[Incident], config: Config, site_url: str) -> bytes:
    """A JSON Feed (jsonfeed.org, 1.1) of every incident, with its state."""
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": config.site.title,
        "feed_url": _link(site_url, "feed.json"),
        "items": [
            {
                "id": item.id,
                "url": _link(site_url, f"incidents/{item.id}.html"),
                "title": item.title,
                "content_text": item.summary or item.name,
                "date_published": item.start_time,
                "date_modified": _updated(item),
                "tags": item.tags,
                "_incident": {
                    "number": item.number,
                    "severity": item.severity,
                    "status": item.status,
                    "start_time": item.start_time,
                    "end_time": item.end_time,
                    "resources": [r["id"] for r in item.resources],
                },
            }
            for item in sorted(items, key=lambda i: -i.number)
        ],
    }
    return json.dumps(feed, ensure_ascii=False).encode()

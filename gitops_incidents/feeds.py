"""What the site publishes for programs, not people: an Atom feed and a JSON Feed of
every incident, and the status as a badge (`status.svg`) and in shields.io's endpoint
format (`status.json`)."""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree

from gitops_incidents import charts
from gitops_incidents.models import Config
from gitops_incidents.timeline import Incident


def _link(site_url: str, path: str) -> str:
    return f"{site_url.rstrip('/')}/{path}" if site_url else path


# What XML 1.0 cannot hold at all, not even escaped: control characters, lone
# surrogates, U+FFFE and U+FFFF. A name may have them; the feed must stay well-formed.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def atom(items: list[Incident], config: Config, site_url: str) -> bytes:
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


def json_feed(items: list[Incident], config: Config, site_url: str) -> bytes:
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


def status_files(active: list[Incident], ranks: dict[str, int]) -> dict[str, bytes]:
    """The status as a badge for READMEs, and in shields.io's endpoint format."""
    if active:
        message = f"{len(active)} active, {active[0].severity}"
        rank: int | None = ranks.get(active[0].severity, len(ranks))
    else:
        message, rank = "none active", None
    colour = charts.badge_colour(rank)
    endpoint = {"schemaVersion": 1, "label": "incidents", "message": message, "color": colour}
    return {
        "status.svg": charts.badge("incidents", message, colour),
        "status.json": (json.dumps(endpoint) + "\n").encode(),
    }

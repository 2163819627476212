"""Matching events to triggers as Prefect's server does (SPEC 5.1): full-string globs
on names and labels, resource specifications, labels of related resources."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


@functools.lru_cache(maxsize=4096)
def glob(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether any of the full-string, case-sensitive globs (`*`, `?`, `[..]`) matches."""
    exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
    wild = [fnmatch.translate(p) for p in patterns if p not in exact]
    if not wild:
        return exact.__contains__
    regex = re.compile("|".join(wild))
    return lambda value: value in exact or regex.match(value) is not None


class Spec:
    """A resource specification: AND across labels, OR within a label's values; a
    leading `!` negates a value; a missing label never matches, negated or not."""

    def __init__(self, spec: dict[str, str | list[str]]) -> None:
        self.labels: list[tuple[str, Callable[[str], bool], list[Callable[[str], bool]]]] = []
        for name, values in spec.items():
            listed = [values] if isinstance(values, str) else values
            positive = glob(tuple(v for v in listed if not v.startswith("!")))
            negated = [glob((v[1:],)) for v in listed if v.startswith("!")]
            self.labels.append((name, positive, negated))

    def __bool__(self) -> bool:
        return bool(self.labels)

    def matches(self, resource: dict[str, Any]) -> bool:
        for name, positive, negated in self.labels:
            value = resource.get(name)
            if value is None:
                return False
            if positive(value):
                continue
            # OR within the list: a negated value the label does not match also counts.
            for test in negated:
                if not test(value):
                    break
            else:
                return False
        return True

    def any_matches(self, resources: list[dict[str, Any]]) -> bool:
        return any(self.matches(resource) for resource in resources)


@functools.lru_cache(maxsize=4096)
def _spec(canonical: str) -> Spec:
    return Spec(json.loads(canonical))


def spec(raw: dict[str, str | list[str]]) -> Spec:
    """One Spec object per distinct specification, so an event tests each once."""
    return _spec(json.dumps(raw, sort_keys=True))


def find_label(event: Event, label: str) -> str | None:
    """A label of the primary resource, or `related:<role>:<label>` of the first
    related resource in that role (Prefect's `find_resource_label`)."""
    if label.startswith("related:"):
        _, role, inner = [*label.split(":", 2), "", ""][:3]
        for related in event.get("related") or ():
            if related.get("prefect.resource.role") == role:
                value = related.get(inner)
                return value if isinstance(value, str) else None
        return None
    value = event["resource"].get(label)
    return value if isinstance(value, str) else None

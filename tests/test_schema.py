from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gitops_incidents.cli import main
from gitops_incidents.schemas import SCHEMAS, schema
from gitops_incidents.validation import read_document

from .conftest import ROOT

KINDS = sorted(SCHEMAS)


@pytest.mark.parametrize("kind", KINDS)
def test_published_schema_is_current(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == schema(kind)
    # The editors' copy in schemas/ must follow the models: regenerate with `schema KIND`.
    assert (ROOT / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8") == printed


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_draft_7(kind: str) -> None:
    document = schema(kind)
    assert document["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(document)
    assert "$defs" not in json.dumps(document)


def examples() -> list[tuple[str, Path]]:
    found = [("config", ROOT / "gitops-incidents.yaml")]
    found += [("incident", p) for p in sorted(ROOT.glob("incidents/*.yaml"))]
    found += [("automation", p) for p in sorted(ROOT.glob("automations/*"))]
    return found


@pytest.mark.parametrize(("kind", "path"), examples(), ids=[p.name for _, p in examples()])
def test_examples_satisfy_the_schema(kind: str, path: Path) -> None:
    document = read_document(path.name, path.read_bytes())
    jsonschema.Draft7Validator(schema(kind)).validate(document)


SCHEMA_REJECTS: list[tuple[str, dict[str, Any]]] = [
    ("incident", {"name": "x", "severity": "SEV-1", "severty": "SEV-1"}),
    ("incident", {"name": "x"}),
    ("incident", {"name": "x", "severity": "SEV-1", "status": "closed"}),
    ("incident", {"name": "x", "severity": "SEV-1", "related_resources": ["no-dot"]}),
    ("automation", {"name": "a", "trigger": {"posture": "Sometimes"}, "actions": []}),
    ("automation", {"name": "a", "trigger": {"posture": "Reactive"}, "actions": [{"type": "x"}]}),
    ("config", {"notifiers": {"a": {"kind": "slack"}}}),
]


@pytest.mark.parametrize(("kind", "document"), SCHEMA_REJECTS)
def test_schema_rejects_what_the_models_reject(kind: str, document: dict[str, Any]) -> None:
    assert list(jsonschema.Draft7Validator(schema(kind)).iter_errors(document))


def test_schema_defaults_to_incident(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Incident"

"""JSON Schemas of the file formats, for editors (yaml-language-server, VS Code).

pydantic writes draft 2020-12; editors understand draft 7 best, so definitions
move to `definitions` and the schema declares draft 7. The constructs pydantic
uses for these models (anyOf, const, enum, pattern, $ref) are draft-7 ones.
"""

from __future__ import annotations

import json
from typing import Any

# The formats, by the name `schema KIND` takes, and their models' names in models.py
# (imported when a schema is made: the command's parser lists the names only).
SCHEMAS = {"incident": "Incident", "automation": "Automation", "config": "Config"}
DRAFT_7 = "http://json-schema.org/draft-07/schema#"


def schema(kind: str) -> dict[str, Any]:
    from gitops_incidents import models

    model = getattr(models, SCHEMAS[kind])
    generated = model.model_json_schema(
        by_alias=True, ref_template="#/definitions/{model}", mode="validation"
    )
    definitions = generated.pop("$defs", None)
    result: dict[str, Any] = {"$schema": DRAFT_7, **generated}
    if definitions:
        result["definitions"] = definitions
    return result


def schema_text(kind: str) -> str:
    return json.dumps(schema(kind), indent=2, sort_keys=True) + "\n"

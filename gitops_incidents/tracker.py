"""The layout of a tracker repository (SPEC 2): where each kind of file lives."""

from __future__ import annotations

import enum
import functools
import subprocess
from pathlib import Path

from gitops_incidents.models import id_problem

INCIDENTS = "incidents"
AUTOMATIONS = "automations"
CONFIG_FILE = "gitops-incidents.yaml"
AUTOMATION_SUFFIXES = (".yaml", ".yml", ".json")


class Kind(enum.Enum):
    INCIDENT = "incident"
    AUTOMATION = "automation"
    CONFIG = "config"


@functools.lru_cache(maxsize=65536)
def classify(relpath: str) -> Kind | None:
    """The kind of tracker file at `relpath` (POSIX, relative to the root), or None.

    Anything directly in `incidents/` or `automations/` counts, whatever its
    name, so that a misnamed file is reported rather than silently skipped;
    dotfiles (`.gitkeep`) are left alone.
    """
    # Plain string operations: this runs for every change in history.
    if relpath == CONFIG_FILE:
        return Kind.CONFIG
    folder, _, name = relpath.partition("/")
    if not name or "/" in name or name.startswith("."):
        return None
    return _FOLDERS.get(folder)


_FOLDERS = {INCIDENTS: Kind.INCIDENT, AUTOMATIONS: Kind.AUTOMATION}


@functools.lru_cache(maxsize=65536)
def name_problem(relpath: str, kind: Kind) -> str | None:
    """What is wrong with a tracker file's name (its suffix, its id), or None."""
    if kind is Kind.INCIDENT and not relpath.endswith(".yaml"):
        return "an incident file is named <id>.yaml"
    if kind is Kind.AUTOMATION and not relpath.endswith(AUTOMATION_SUFFIXES):
        return "an automation file is named <id>.yaml, <id>.yml or <id>.json"
    return None if kind is Kind.CONFIG else id_problem(file_id(relpath))


@functools.lru_cache(maxsize=65536)
def file_id(relpath: str) -> str:
    """`incidents/db-outage.yaml` -> `db-outage`."""
    name = relpath.rpartition("/")[2]
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def find_root(start: Path) -> Path:
    """The git repository around `start`, or `start` itself outside git."""
    result = subprocess.run(
        ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    return Path(result.stdout.strip()) if result.returncode == 0 else start


def tracker_files(root: Path) -> list[str]:
    """Every tracker file in the working tree, as sorted POSIX paths relative to `root`."""
    found = [CONFIG_FILE] if (root / CONFIG_FILE).is_file() else []
    for folder in (INCIDENTS, AUTOMATIONS):
        directory = root / folder
        if directory.is_dir():
            found.extend(
                f"{folder}/{entry.name}"
                for entry in directory.iterdir()
                if not entry.name.startswith(".")
            )
    return sorted(found)

"""The layout of a tracker repository (SPEC 2): where each kind of file lives."""

from __future__ import annotations

import enum
import functools
import os
import re
import stat
import subprocess
from pathlib import Path

INCIDENTS = "incidents"
AUTOMATIONS = "automations"
CONFIG_FILE = "gitops-incidents.yaml"
AUTOMATION_SUFFIXES = (".yaml", ".yml", ".json")
# Page names MkDocs gives a folder's index (README.md becomes index.html): the site's
# listings have them, so no incident (or tag) page may.
SITE_PAGES = frozenset({"index", "README"})


ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def id_problem(value: str) -> str | None:
    """Why `value` is not a valid incident or automation id, or None."""
    if not ID_RE.fullmatch(value):
        return (
            f"invalid id {value!r}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if ".." in value:
        return f"invalid id {value!r}: '..' is not allowed"
    return None


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
    if not relpath.isascii() and not _is_utf8(relpath):
        return "the file name is not UTF-8"
    if kind is Kind.INCIDENT and not relpath.endswith(".yaml"):
        return "an incident file is named <id>.yaml"
    if kind is Kind.INCIDENT and file_id(relpath) in SITE_PAGES:
        return f"id {file_id(relpath)!r} is the site's own page incidents/index.html"
    if kind is Kind.AUTOMATION and not relpath.endswith(AUTOMATION_SUFFIXES):
        return "an automation file is named <id>.yaml, <id>.yml or <id>.json"
    return None if kind is Kind.CONFIG else id_problem(file_id(relpath))


def _is_utf8(text: str) -> bool:
    try:
        text.encode()  # git's bytes that are not UTF-8 are kept as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


# git's file modes: what is not a regular file is a finding, as git records it.
_MODES = {
    "120000": "a symbolic link, not a file: git records the link itself, not its target",
    "160000": "a submodule (gitlink), not a file",
}


def mode_problem(mode: str) -> str | None:
    """What is wrong with a tracker file of git mode `mode`, or None (a regular file)."""
    return None if mode in ("100644", "100755") else _MODES.get(mode, f"not a file (mode {mode})")


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
    """Every tracker file in the working tree, as sorted POSIX paths relative to `root`.

    A folder that is a symbolic link is listed itself, not what it leads to: nothing
    outside the repository is read (`validate` reports the link)."""
    found = [CONFIG_FILE] if os.path.lexists(root / CONFIG_FILE) else []
    for folder in (INCIDENTS, AUTOMATIONS):
        directory = root / folder
        if directory.is_symlink():
            found.append(folder)
        elif directory.is_dir():
            found.extend(
                f"{folder}/{entry.name}"
                for entry in directory.iterdir()
                if not entry.name.startswith(".")
            )
    return sorted(found)


class NotAFile(Exception):
    """A working-tree path that is not a regular file inside the repository."""


def read_file(root: Path, relpath: str, limit: int, what: str = "tracker") -> bytes:
    """The bytes of the regular file at `relpath`, never through a symbolic link (not
    even in a parent folder): what git would record, never what lies outside the
    repository. NotAFile says why not; OverflowError if it is larger than `limit`."""
    where = root
    parts = relpath.split("/")
    for index, part in enumerate(parts):
        where = where / part
        mode = where.lstat().st_mode  # FileNotFoundError passes through
        if stat.S_ISLNK(mode):
            shown = "/".join(parts[: index + 1])
            raise NotAFile(f"{shown} is {_MODES['120000']}")
    if not stat.S_ISREG(mode):
        raise NotAFile(f"not a file: {what} files sit directly in the folder")
    descriptor = os.open(where, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise OverflowError(size)
        return file.read(limit + 1)

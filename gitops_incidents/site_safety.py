"""Whether a branch's MkDocs project is safe to build (`build --safe`).

Building a site runs what its project says: MkDocs reads `site/mkdocs.yml` with a
YAML loader that runs Python for some tags (`!!python/object/apply:...`) and reads
the environment (`!ENV`), `hooks:` and a theme's `custom_dir` are Python and
templates that run, plugins and Markdown extensions read files, and `docs_dir` or a
symbolic link publishes whatever it leads to. A pull request's branch is not yet
trusted, so a safe build accepts its project only where it is what the base
branch already has (reviewed and merged): the risky keys as they are on the base,
the files they name unchanged, plain YAML, no markup in the texts Material prints
as they are, and nothing under the pages that leads out of the repository.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops_incidents import gitcmd, tracker, yamlio
from gitops_incidents.validation import Finding

PROJECT = "site/mkdocs.yml"
# What runs code, reads files or pulls in scripts when MkDocs builds.
RISKY_KEYS = (
    "INHERIT", "hooks", "plugins", "markdown_extensions", "theme", "docs_dir", "site_dir",
    "extra_css", "extra_javascript", "extra_templates", "watch", "extra",
)  # fmt: skip
# Material prints site_name, copyright, nav titles... as they are: markup or a script URL.
_MARKUP = re.compile(r"<|^\s*(javascript|data|vbscript):", re.IGNORECASE)


def problems(root: Path, base: str) -> list[Finding]:
    """What keeps the working tree's MkDocs project from a safe build, measured
    against the base revision's."""
    head_bytes: bytes | None
    try:
        head_bytes = tracker.read_file(root, PROJECT, yamlio.MAX_BYTES, "the site's project")
    except FileNotFoundError:
        head_bytes = None  # the built-in project: nothing in it runs code
    except (tracker.NotAFile, OverflowError, OSError) as exc:
        return [Finding(PROJECT, 1, 1, f"cannot be read for a safe build: {exc}")]
    base_bytes = gitcmd.read_blob(root, base, PROJECT)
    base_doc = _plain(base_bytes)
    findings: list[Finding] = []
    head: dict[str, Any] = base_doc or {}
    if head_bytes is None:
        head = {}
    elif head_bytes != base_bytes:
        marks = yamlio.Marks.empty()
        try:
            loaded = yamlio.load_bytes(head_bytes, marks=marks)
        except yamlio.LoadError as exc:
            message = f"{exc.message} (a safe build reads plain YAML: MkDocs's loader runs code)"
            findings.append(Finding(PROJECT, exc.position.line, exc.position.column, message))
        else:
            head = loaded if isinstance(loaded, dict) else {}
            findings += _changed_keys(head, base_doc, marks, base)
            findings += _markup(head, base_doc, marks)
    site = root / "site"
    findings += _changed_files(root, base, _named_files(site, head))
    for folder in _folders(site, head):
        findings += _leaving_links(root, base, folder)
    return findings


def _plain(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return {}
    try:
        loaded = yamlio.load_bytes(data)
    except yamlio.LoadError:
        return None  # the base uses tags this reader refuses: only the same file passes
    return loaded if isinstance(loaded, dict) else {}


def _changed_keys(
    head: dict[str, Any], base: dict[str, Any] | None, marks: yamlio.Marks, rev: str
) -> Iterator[Finding]:
    for key in RISKY_KEYS:
        if key in head and (base is None or head[key] != base.get(key)):
            position = marks.locate((key,), key=True)
            yield Finding(
                PROJECT,
                position.line,
                position.column,
                f"{key}: not as on the base {rev}; a safe build takes it only as the base "
                "branch has it (it runs code or reads files when MkDocs builds)",
            )


def _markup(
    head: dict[str, Any], base: dict[str, Any] | None, marks: yamlio.Marks
) -> Iterator[Finding]:
    known = {text for _, text in _strings(base or {})}
    for where, text in _strings(head):
        if where[:1] and where[0] in RISKY_KEYS:
            continue  # compared as a whole above
        if _MARKUP.search(text) and text not in known:
            position = marks.locate(where)
            yield Finding(
                PROJECT,
                position.line,
                position.column,
                f"{'.'.join(map(str, where))}: markup or a script URL, which Material "
                "prints as it is",
            )


def _strings(value: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, where) if isinstance(key, str) else iter(())
            yield from _strings(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*where, index))


def _named_files(site: Path, head: dict[str, Any]) -> list[Path]:
    """Files the project runs: hooks, an inherited project, a theme's templates."""
    named = [site / str(hook) for hook in head.get("hooks") or [] if isinstance(hook, str)]
    if isinstance(head.get("INHERIT"), str):
        named.append(site / head["INHERIT"])
    for folder in _folders(site, head)[1:]:
        named.extend(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return named


def _folders(site: Path, head: dict[str, Any]) -> list[Path]:
    """The pages' folder, then a theme's own folder if it has one."""
    theme = head.get("theme")
    custom = theme.get("custom_dir") if isinstance(theme, dict) else None
    docs = head.get("docs_dir", "docs")
    folders = [site / str(docs)]
    if isinstance(custom, str):
        folders.append(site / custom)
    return folders


def _changed_files(root: Path, base: str, paths: list[Path]) -> Iterator[Finding]:
    for path in paths:
        relpath = _inside(root, path)
        if relpath is None:
            yield Finding(PROJECT, 1, 1, f"{path} is outside the repository")
            continue
        try:
            current: bytes | None = tracker.read_file(root, relpath, 64 * 1024 * 1024, "site")
        except (tracker.NotAFile, OverflowError, OSError):
            current = None
        if current is None or current != gitcmd.read_blob(root, base, relpath):
            yield Finding(relpath, 1, 1, f"changed since the base {base}, and a build runs it")


def _leaving_links(root: Path, base: str, folder: Path) -> Iterator[Finding]:
    """Symbolic links that lead out of the repository (or into .git) from `folder`, its
    parents inside the repository, or anything under it; unless the base has the
    same link. A folder outside the repository is the base's choice (`docs_dir`)."""
    relpath = _inside(root, folder)
    if relpath is None:
        return
    parts = relpath.split("/")
    for depth in range(1, len(parts) + 1):
        found = _leaving(root, base, root.joinpath(*parts[:depth]))
        if found:
            yield found
            return
    for directory, subfolders, files in os.walk(folder):
        for name in (*subfolders, *files):
            found = _leaving(root, base, Path(directory) / name)
            if found:
                yield found


def _leaving(root: Path, base: str, path: Path) -> Finding | None:
    if not path.is_symlink():
        return None
    target = path.resolve()
    inside = _inside(root, target)
    if inside is not None and ".git" not in inside.split("/"):
        return None
    relpath = _inside(root, path) or str(path)
    if gitcmd.read_blob(root, base, relpath) == str(path.readlink()).encode():
        return None  # the base has the very same link
    return Finding(relpath, 1, 1, f"a symbolic link out of the repository, to {target}")


def _inside(root: Path, path: Path) -> str | None:
    try:
        return Path(os.path.abspath(path)).relative_to(root).as_posix()  # noqa: PTH100 (no link followed)
    except ValueError:
        return None

"""`init [PATH]`: a tracker repository made, or what it lacks added. Nothing that
exists is overwritten; every file written, and every one kept, is said."""

from __future__ import annotations

import argparse
import shlex
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from gitops_incidents import gitcmd, tracker
from gitops_incidents.errors import UsageError

# The merge driver's name in .gitattributes and in git's configuration.
DRIVER = "gitops-incidents"


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Make PATH (default: the current folder) a tracker repository: git, "
        "the configuration, incidents/ and automations/ (a starting set, off until "
        "enabled), the JSON Schemas, the merge driver (.gitattributes and this clone's "
        "git configuration), a pre-commit hook, and GitHub workflows (check on pull "
        "request, apply on push and on a schedule, the site on GitHub Pages). A file "
        "that exists is kept as it is.",
    )
    parser.add_argument("path", nargs="?", type=Path, metavar="PATH")


def starter_files() -> dict[str, bytes]:
    """What `init` writes, by path in the repository: the package's starter set
    (`dot-` names become dotfiles) and the JSON Schemas."""
    from gitops_incidents.schemas import SCHEMAS, schema_text

    found: dict[str, bytes] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for item in sorted(folder.iterdir(), key=lambda i: i.name):
            name = (
                "." + item.name.removeprefix("dot-") if item.name.startswith("dot-") else item.name
            )
            if item.is_dir():
                walk(item, f"{prefix}{name}/")
            elif not item.name.startswith((".", "__")):
                found[prefix + name] = item.read_bytes()

    walk(resources.files("gitops_incidents") / "starter", "")
    for kind in SCHEMAS:
        found[f"schemas/{kind}.schema.json"] = schema_text(kind).encode()
    return found


def run(args: argparse.Namespace) -> int:
    root = (args.path or Path.cwd()).resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder")
    existing = next(p for p in (root, *root.parents) if p.exists())
    top = tracker.find_root(existing)
    if top != existing or (existing != root and (existing / ".git").exists()):
        raise UsageError(f"{root} is inside the git repository {top}: a tracker is a top folder")
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".git").exists():
        gitcmd.run(root, "init", "-q", "-b", "main")
        print(f"made a git repository in {root}", file=sys.stderr)
    branch = gitcmd.run(root, "symbolic-ref", "--short", "HEAD").strip()
    wrote = kept = 0
    for relpath, data in starter_files().items():
        if relpath == tracker.CONFIG_FILE:  # the branch this repository has
            data = data.replace(b"\nbranch: main ", f"\nbranch: {branch} ".encode())
        target = root / relpath
        folders = [root.joinpath(*relpath.split("/")[:n]) for n in range(1, relpath.count("/") + 1)]
        if any(folder.is_symlink() or folder.is_file() for folder in folders):
            print(
                f"kept  {relpath} (not written: a link or a file stands in its way)",
                file=sys.stderr,
            )
            kept += 1
            continue
        if target.exists() or target.is_symlink():
            added = _add_entry(target, relpath, data)
            print(f"{'added to' if added else 'kept '} {relpath}", file=sys.stderr)
            kept += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"wrote {relpath}", file=sys.stderr)
        wrote += 1
    _merge_driver(root)
    print(
        f"{wrote} file(s) written, {kept} kept. Next: review them, `git add -A && git "
        "commit`, then `gitops-incidents declare NAME --severity SEV-3`.",
        file=sys.stderr,
    )
    return 0


def _add_entry(target: Path, relpath: str, data: bytes) -> bool:
    """Our entry added to a shared file a person already has (.gitattributes,
    .gitignore: the lines; .pre-commit-config.yaml: the hook), if it lacks it."""
    if target.is_symlink() or not target.is_file():
        return False
    text = target.read_text(encoding="utf-8", errors="surrogateescape")
    if relpath in (".gitattributes", ".gitignore"):
        ours = [line for line in data.decode().splitlines() if line and line[0] != "#"]
        missing = [line for line in ours if line not in text.splitlines()]
        if missing:
            ending = "" if text.endswith("\n") or not text else "\n"
            target.write_text(text + ending + "\n".join(missing) + "\n", encoding="utf-8")
        return bool(missing)
    if relpath == ".pre-commit-config.yaml" and "gitops-incidents-validate" not in text:
        from gitops_incidents import yamlio

        try:
            document = yamlio.RoundTrip(text)
            repos = document.data.get("repos")
            repos.extend(yamlio.RoundTrip(data.decode()).data["repos"])
        except (yamlio.LoadError, AttributeError, TypeError) as exc:
            print(f"{relpath}: cannot add the hook ({exc}): add it by hand", file=sys.stderr)
            return False
        target.write_text(document.dump(), encoding="utf-8")
        return True
    return False


def _merge_driver(root: Path) -> None:
    """This clone's git configuration of the merge driver .gitattributes names (git
    never takes a driver from the repository itself: each clone runs `init`)."""
    key = f"merge.{DRIVER}.driver"
    try:
        present = gitcmd.run(root, "config", "--local", "--get", key).strip()
    except gitcmd.GitError:
        present = ""
    if present:
        print(f"kept  git config {key} (it is set)", file=sys.stderr)
        return
    # The interpreter that runs this: the driver works in this clone as it is.
    command = f"{shlex.quote(sys.executable)} -m gitops_incidents merge-driver %O %A %B %P"
    gitcmd.run(root, "config", "--local", f"merge.{DRIVER}.name", "incidents merged by field")
    gitcmd.run(root, "config", "--local", key, command)
    print(f"set   git config {key}", file=sys.stderr)

"""`validate [PATH...] [--format text|json|github]`: check tracker files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_incidents import tracker
from gitops_incidents.errors import UsageError

if TYPE_CHECKING:
    from gitops_incidents.validation import Report


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Check tracker files (all of them by default). Exit 0: valid; "
        "1: problems found; 2: usage error.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.validation import validate

    root: Path = args.repo
    relpaths = None
    if args.paths:
        relpaths = []
        for path in args.paths:
            found = _tracker_paths(root, path)
            if not found:
                raise UsageError(f"{path}: not an incident, automation or configuration file")
            relpaths.extend(found)
    report = validate(root, relpaths)
    FORMATS[args.format](report)
    return 1 if report.errors else 0


def _tracker_paths(root: Path, path: Path) -> list[str]:
    """The tracker files a command-line path names: a file, or the files in a folder."""
    # Made absolute without following a symbolic link: the link is what is checked.
    full = Path(os.path.abspath(path))  # noqa: PTH100 (resolve() would follow it)
    if not os.path.lexists(full):
        raise UsageError(f"{path}: no such file or directory")
    try:
        relative = full.relative_to(root).as_posix()
    except ValueError:
        raise UsageError(f"{path}: outside the repository {root}") from None
    if relative in (tracker.INCIDENTS, tracker.AUTOMATIONS) and full.is_symlink():
        return [relative]
    if full.is_dir() and not full.is_symlink():
        inside = f"{relative}/" if relative != "." else ""
        return [p for p in tracker.tracker_files(root) if p.startswith(inside)]
    return [relative] if tracker.classify(relative) else []


def _text(report: Report) -> None:
    for finding in report.findings:
        print(finding, file=sys.stderr)
    problems = len(report.findings)
    if problems:
        files = len({f.path for f in report.findings})
        print(f"{problems} problem(s) in {files} of {report.files} file(s)", file=sys.stderr)
    else:
        print(f"{report.files} file(s) checked, no problems", file=sys.stderr)


def _json(report: Report) -> None:
    findings = [f.as_json() for f in report.findings]
    json.dump({"files": report.files, "errors": report.errors, "findings": findings}, sys.stdout)
    sys.stdout.write("\n")


def _github(report: Report) -> None:
    for finding in report.findings:
        print(finding.annotation())


FORMATS = {"text": _text, "json": _json, "github": _github}

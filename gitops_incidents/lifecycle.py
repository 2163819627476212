"""A person's change to an incident, as the lifecycle commands make it: checked,
written with the one writer (`incident_writer`), committed as the person running
the command, and pushed when asked.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from gitops_incidents import gitcmd, incident_writer, tracker, yamlio
from gitops_incidents.errors import UsageError
from gitops_incidents.models import Config, Context, Incident
from gitops_incidents.tracker import id_problem


def config(root: Path) -> Config:
    from gitops_incidents.validation import load_config

    found, problems = load_config(root)
    if problems:
        raise UsageError(f"{problems[0]} (fix the configuration first)")
    return found


def severity(config: Config, value: str) -> str:
    scale = [s.id for s in config.severities]
    if value not in scale:
        raise UsageError(f"--severity {value!r} is not on the scale: {', '.join(scale)}")
    return value


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def person(root: Path) -> str | None:
    """The name git would commit as (GIT_AUTHOR_NAME, then user.name), if any."""
    try:
        ident = gitcmd.run(root, "var", "GIT_AUTHOR_IDENT")
    except gitcmd.GitError:
        return None
    return ident.rsplit(" <", 1)[0].strip() or None


def save(
    root: Path, relpath: str, text: str, message: str, args: argparse.Namespace, config: Config
) -> int:
    """Validate the new text, write it, commit it (and push) unless told not to."""
    from gitops_incidents.validation import parse_file

    context = Context(config, tracker.file_id(relpath))
    _, findings = parse_file(relpath, text.encode(), Incident, context)
    if findings:
        for finding in findings:
            print(finding, file=sys.stderr)
        print(f"gitops-incidents: {relpath} is left as it was", file=sys.stderr)
        return 1
    (root / tracker.INCIDENTS).mkdir(exist_ok=True)
    (root / relpath).write_text(text, encoding="utf-8")
    if args.no_commit:
        return 0
    try:
        gitcmd.run(root, "add", "--", relpath)
        gitcmd.run(root, "commit", "-q", "-m", message, "--", relpath)
    except gitcmd.GitError as exc:
        print(f"gitops-incidents: {relpath} is written, not committed: {exc}", file=sys.stderr)
        return 1
    if args.push:
        try:
            gitcmd.run(root, "push", "-q")
        except gitcmd.GitError as exc:
            print(f"gitops-incidents: committed, not pushed: {exc}", file=sys.stderr)
            return 1
    return 0


def change(args: argparse.Namespace, edit: incident_writer.Change, message: str) -> int:
    """Apply `edit` to the incident `args.id` in the working tree: 0 when saved (or
    when nothing needed changing), 1 when refused or invalid."""
    root: Path = args.repo
    incident_id: str = args.id
    relpath = f"{tracker.INCIDENTS}/{incident_id}.yaml"
    if id_problem(incident_id) or not (root / relpath).is_file():
        raise UsageError(f"no incident {incident_id!r}: there is no {relpath}")
    found = config(root)
    try:
        text = yamlio.decode(tracker.read_file(root, relpath, yamlio.MAX_BYTES, "incident"))
        new = incident_writer.edit_text(relpath, text, edit)
    except incident_writer.Refused as exc:
        print(f"gitops-incidents: {incident_id}: {exc}", file=sys.stderr)
        return 1
    except (yamlio.LoadError, tracker.NotAFile, OverflowError, OSError, ValueError) as exc:
        why = yamlio.size_problem(exc.args[0]) if isinstance(exc, OverflowError) else exc
        print(f"gitops-incidents: {relpath} cannot be edited: {why}", file=sys.stderr)
        return 1
    if new is None:
        print(f"{incident_id}: nothing to change", file=sys.stderr)
        return 0
    status = save(root, relpath, new, f"{message} {incident_id}", args, found)
    if status == 0:
        print(f"{message.lower()} {relpath}", file=sys.stderr)
    return status

"""`check [--base REV] [--head REV] [--format text|github|markdown|json]`: a pull
request's report. The files its commits touch validated, the rules that make it
safe to merge (`merge_safety`), and the plan of what merging would make the
automations do. Exit 1 on findings."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_incidents import gitcmd
from gitops_incidents.commands.plan import as_json, describe

if TYPE_CHECKING:
    from gitops_incidents.engine import Plan
    from gitops_incidents.validation import Finding


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="For the commits of base..head (from where head forked from base): "
        "every version of the tracker files they touch validated; an incident renamed, "
        "deleted, or a landed comment edited or removed flagged; and what merging would "
        "make the automations do. Nothing is written but, with --format github, the job "
        "summary. Exit 1 on findings.",
    )
    parser.add_argument("--base", metavar="REV", help="default: the configured branch")
    parser.add_argument("--head", metavar="REV", default="HEAD", help="default: HEAD")
    parser.add_argument(
        "--format",
        choices=("text", "github", "markdown", "json"),
        default="text",
        help="github: annotations on the exact lines and a Markdown summary in "
        "$GITHUB_STEP_SUMMARY",
    )


def run(args: argparse.Namespace) -> int:
    from gitops_incidents import merge_safety
    from gitops_incidents.engine import plan
    from gitops_incidents.repository import branch_ref, config_at

    root: Path = args.repo
    base_name = args.base or branch_ref(root, config_at(root, args.head))
    head = gitcmd.resolve(root, args.head)
    # Where head forked from base: what the pull request itself adds.
    fork = gitcmd.run(root, "merge-base", gitcmd.resolve(root, base_name), head).strip()
    result = plan(root, fork, head)
    findings = sorted({*result.findings, *merge_safety.findings(root, fork, head)})
    span = f"{base_name}..{args.head}"
    if args.format == "json":
        data = {"base": fork, "head": head, "findings": [f.as_json() for f in findings]}
        sys.stdout.write(json.dumps(data | as_json(result), ensure_ascii=False) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(markdown(findings, result, span))
    elif args.format == "github":
        for finding in findings:
            print(finding.annotation())
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with Path(summary).open("a", encoding="utf-8") as file:
                file.write(markdown(findings, result, span))
    else:
        for finding in findings:
            print(finding, file=sys.stderr)
        for line in describe(result, span):
            print(line, file=sys.stderr)
    errors = [f for f in findings if f.level == "error"]
    verdict = f"{len(errors)} problem(s)" if errors else "no problems"
    print(f"check {span}: {verdict}, {len(result.planned)} firing(s) planned", file=sys.stderr)
    return 1 if errors else 0


def markdown(findings: list[Finding], result: Plan, span: str) -> str:
    """The report as a reviewer reads it in a pull request (a job summary, a comment)."""
    out = [f"## gitops-incidents: `{span}`\n"]
    if findings:
        out.append(f"**{len(findings)} problem(s)** to fix before merging:\n")
        out.append("| file | line | problem |\n| --- | --- | --- |")
        out.extend(f"| `{f.path}` | {f.line}:{f.column} | {_cell(f.message)} |" for f in findings)
    else:
        out.append("No problems: the files are valid and the record loses nothing.")
    actions = sum(len(p.actions) for p in result.planned)
    out.append(f"\n### What merging would do: {len(result.planned)} firing(s)\n")
    out.append(
        f"Plan: {len(result.events)} event(s), {len(result.planned)} firing(s), "
        f"{actions} action(s).\n"
    )
    out.append("```text\n" + "\n".join(describe(result, span)) + "\n```\n")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")

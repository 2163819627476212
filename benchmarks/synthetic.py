"""Seeded synthetic tracker histories, written with one `git fast-import`.

`generate(path, incidents=N, commits=M, seed=S)` makes a repository whose
main line has M commits, each changing 1 to 3 incident files the way a team
does: declare, raise or lower severity, tag, comment, resolve, reopen. The
same arguments always give the same history, byte for byte.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

AUTHORS = [
    ("Alice Adams", "alice@example.invalid"),
    ("Bob Brown", "bob@example.invalid"),
    ("Carol Chen", "carol@example.invalid"),
    ("Dana Diaz", "dana@example.invalid"),
]
SEVERITIES = ["SEV-1", "SEV-2", "SEV-3", "SEV-4", "SEV-5"]
TAGS = ["prod", "staging", "database", "network", "etl", "storage", "k8s", "aws"]
# Who commits in the benchmarks' repositories, whatever the machine's git identity.
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
# The benchmarks' sizes: commits, and the incidents declared along them.
SIZES = {600: 60, 5000: 500, 50000: 5000}
START = 1_767_225_600  # 2026-01-01T00:00:00Z
MAX_COMMENTS = 6


@dataclass
class _Incident:
    id: str
    name: str
    severity: str
    tags: list[str]
    resource: str
    status: str = "active"
    comments: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            "# yaml-language-server: $schema=../schemas/incident.schema.json",
            f"name: {self.name}",
            f"severity: {self.severity}",
            f"status: {self.status}",
            "summary: |",
            f"  Synthetic incident {self.id}: flow runs on {self.resource} fail.",
            f"tags: [{', '.join(self.tags)}]",
            "related_resources:",
            f"  - {self.resource}",
        ]
        if self.comments:
            lines.append("comments:")
            for author, text in self.comments:
                lines += [f"  - text: '{text}'", f"    author: {author}"]
        return "\n".join(lines) + "\n"


def _change(incident: _Incident, rng: random.Random, author: str) -> str:
    """Apply one realistic change; returns the commit message's verb."""
    if incident.status == "resolved":
        incident.status = "active"
        return "reopen"
    roll = rng.random()
    # A dozen updates and a team resolves or escalates: incidents stop growing, so
    # a longer history means more changes, not ever larger files.
    if roll < 0.45 and len(incident.comments) < MAX_COMMENTS:
        incident.comments.append(
            (author, f"Update {len(incident.comments) + 1}: still investigating.")
        )
        return "comment on"
    if roll < 0.65:
        incident.severity = rng.choice([s for s in SEVERITIES if s != incident.severity])
        return "change severity of"
    if roll < 0.8:
        tag = rng.choice(TAGS)
        if tag not in incident.tags:
            incident.tags.append(tag)
            return "tag"
        incident.severity = rng.choice([s for s in SEVERITIES if s != incident.severity])
        return "change severity of"
    incident.status = "resolved"
    return "resolve"


def git(root: Path, *args: str) -> str:
    """Run git in `root` as the benchmarks' identity; its output."""
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True,
        env={**os.environ, **IDENTITY},
    ).stdout  # fmt: skip


def generate(path: Path, *, incidents: int, commits: int, seed: int = 0) -> Path:
    """Create the repository at `path` (which must not exist) and return it."""
    rng = random.Random(seed)
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    declared: list[_Incident] = []
    stream: list[bytes] = []
    when = START
    for _ in range(commits):
        name, email = rng.choice(AUTHORS)
        # Mostly forward in time; now and then a commit dated before its parent.
        when += rng.randint(-120, 3600) if rng.random() < 0.05 else rng.randint(30, 3600)
        touched: list[_Incident] = []
        verbs: list[str] = []
        for _ in range(rng.randint(1, 3)):
            if len(declared) < incidents and (
                not declared or rng.random() < incidents / commits * 2
            ):
                item = _Incident(
                    id=f"inc-{len(declared) + 1:05d}",
                    name=f"Synthetic outage {len(declared) + 1}",
                    severity=rng.choice(SEVERITIES),
                    tags=rng.sample(TAGS, 2),
                    resource=f"prefect.work-pool.pool-{rng.randint(1, 20)}",
                )
                declared.append(item)
                verbs.append("declare")
            else:
                item = rng.choice(declared)
                if item in touched:
                    continue
                verbs.append(_change(item, rng, name.split()[0].lower()))
            touched.append(item)
        message = "; ".join(f"{v} {i.id}" for v, i in zip(verbs, touched, strict=True))
        files = {f"incidents/{item.id}.yaml": item.text() for item in touched}
        stream.append(_commit(name, email, when, message, files))
    _fast_import(path, stream)
    return path


def _commit(
    name: str, email: str, when: int, message: str, files: dict[str, str], after: bool = False
) -> bytes:
    """One commit on main in git fast-import's language. fast-import chains the commits
    it writes to a branch; `after` starts from the branch as it already is."""
    data = message.encode()
    parts = [
        b"commit refs/heads/main\n",
        f"author {name} <{email}> {when} +0000\n".encode(),
        f"committer {name} <{email}> {when} +0000\n".encode(),
        b"data %d\n%s\n" % (len(data), data),
        b"from refs/heads/main^0\n" if after else b"",
    ]
    for path, text in files.items():
        body = text.encode()
        parts.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(body), body))
    return b"".join(parts)


def _fast_import(path: Path, commits: list[bytes]) -> None:
    """Write `commits` with one git fast-import and check the result out."""
    subprocess.run(
        ["git", "fast-import", "--quiet", "--date-format=raw"],
        cwd=path,
        input=b"".join(commits),
        check=True,
    )
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=path, check=True)


def append_severity_changes(path: Path, commits: int) -> Path:
    """Add `commits` commits to the main line, each moving one incident's severity one
    step: a longer history whose incident files keep their size."""
    files = sorted((path / "incidents").iterdir())
    texts = {f.name: f.read_text() for f in files}
    when = int(
        subprocess.run(
            ["git", "log", "-1", "--format=%ct"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    stream: list[bytes] = []
    for number in range(commits):
        name = files[number % len(files)].name
        texts[name] = re.sub(
            r"^severity: SEV-(\d)$",
            lambda m: f"severity: SEV-{int(m.group(1)) % 5 + 1}",
            texts[name],
            count=1,
            flags=re.MULTILINE,
        )
        when += 60
        changed = {f"incidents/{name}": texts[name]}
        stream.append(
            _commit(
                "Bench",
                "bench@example.invalid",
                when,
                f"change severity of {name}",
                changed,
                after=number == 0,
            )
        )
    _fast_import(path, stream)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--size", type=int, choices=sorted(SIZES), help="commits, of SIZES")
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.size:
        args.commits, args.incidents = args.size, SIZES[args.size]
    generate(args.path, incidents=args.incidents, commits=args.commits, seed=args.seed)


if __name__ == "__main__":
    main()

"""Site builds against a floor measured in the same run (issue: the published site).

For a synthetic tracker of 1,000 incidents (3,000 commits) and one of 2,000
(6,000 commits), prints medians of alternating runs (these machines are noisy):

- floor: a plain `mkdocs build` with Material of the same pages written by hand
  (the generated Markdown and the project's own pages, in a project without our plugin);
- build: `gitops-incidents build` (history walk, ledger, generation, MkDocs),
  with a warm history cache (the daemon, CI with a cached .git) and a cold one
  (a fresh clone);
- build / floor for 1,000 incidents:                         target <= 1.5
- build(2,000) / build(1,000):                               target <= 2.1

The targets are on wall time: how long a build takes. CPU time (user + system,
of the child process and its own children) is printed beside it for context: it
also counts what runs on the second core while MkDocs renders (git, the kernel
creating the thousands of download files), which a plain MkDocs build has not.
Ratios are medians of each round's ratio (a round runs the floor and the builds
back to back), and every run starts with the file system's writes flushed.

Usage: python -m benchmarks.site_bench [--rounds K] [--small N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.synthetic import generate
from gitops_incidents import site

ROOT = Path(__file__).resolve().parent.parent


def tracker(path: Path, incidents: int) -> Path:
    generate(path, incidents=incidents, commits=incidents * 3, seed=incidents)
    shutil.copytree(ROOT / "site", path / "site", ignore=shutil.ignore_patterns("build"))
    subprocess.run(["git", "-C", str(path), "add", "site"], check=True)
    subprocess.run(
        ["git", "-C", str(path), "commit", "-q", "-m", "site"],
        check=True,
        env={
            "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
            "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid",
            "PATH": "/usr/bin:/bin",
        },
    )  # fmt: skip
    return path


Timing = tuple[float, float]  # (wall seconds, CPU seconds: user + system)


def timed(command: list[str]) -> Timing:
    """Wall and CPU time of a child process. CPU time hardly moves when the machine's
    neighbours take turns; wall time does. Each run starts with nothing left to write
    back: a build writes thousands of files, which must not land on the next one."""
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def build(repo: Path, *, cold: bool) -> Timing:
    if cold:
        shutil.rmtree(repo / ".git" / "gitops-incidents", ignore_errors=True)
    out = repo / "out"
    shutil.rmtree(out, ignore_errors=True)
    return timed(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(repo), "build", "--out", str(out)]
    )


def hand_written(repo: Path, work: Path) -> Path:
    """A plain MkDocs project with the same pages (the generator's, and the project's
    own), theme, nav and search: no plugin."""
    project = work / "plain"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(repo / "site" / "docs", project / "docs")
    for relpath, text in site.from_repository(repo).pages.items():
        (project / "docs" / relpath).parent.mkdir(parents=True, exist_ok=True)
        (project / "docs" / relpath).write_text(text, encoding="utf-8")
    config = (repo / "site" / "mkdocs.yml").read_text().replace("  - gitops-incidents\n", "")
    config += f"extra_css: [{site.STYLE}]\nextra_javascript: [{site.SCRIPT}]\n"
    (project / "mkdocs.yml").write_text(config)
    return project


def plain_build(project: Path) -> Timing:
    out = project / "out"
    shutil.rmtree(out, ignore_errors=True)
    return timed(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(project / "mkdocs.yml"),
         "-d", str(out)]
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--small", type=int, default=1000, help="incidents in the smaller tracker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        small = tracker(work / "small", args.small)
        large = tracker(work / "large", args.small * 2)
        project = hand_written(small, work)
        build(large, cold=False)  # the larger tracker's cache, for its warm builds
        floor, warm, cold, warm_large = [], [], [], []
        for _ in range(args.rounds):
            # Each round measures the floor and the builds back to back: the ratios of a
            # round share the machine's mood of the moment.
            floor.append(plain_build(project))
            warm.append(build(small, cold=False))
            cold.append(build(small, cold=True))
            warm_large.append(build(large, cold=False))
        pages = sum(1 for _ in (project / "docs").rglob("*.md"))
        print(f"{args.small:,} incidents, {pages:,} pages; medians of {args.rounds} rounds")
        ok = True
        for label, which in (("wall", 0), ("CPU", 1)):
            fl, wa, co, la = ([t[which] for t in x] for x in (floor, warm, cold, warm_large))
            warm_ratio = statistics.median(w / f for w, f in zip(wa, fl, strict=True))
            cold_ratio = statistics.median(c / f for c, f in zip(co, fl, strict=True))
            scale = statistics.median(b / w for b, w in zip(la, wa, strict=True))
            if label == "wall":
                ok = max(warm_ratio, cold_ratio) <= 1.5 and scale <= 2.1
            print(
                f"{label:>4}: floor {statistics.median(fl):6.2f} s | build warm "
                f"{statistics.median(wa):6.2f} s, ratio {warm_ratio:.2f} | cold "
                f"{statistics.median(co):6.2f} s, ratio {cold_ratio:.2f} | "
                f"{args.small * 2:,} incidents warm {statistics.median(la):6.2f} s, "
                f"ratio to {args.small:,} {scale:.2f}"
            )
        print(
            "targets (wall time): build <= 1.5 x floor, 2x incidents <= 2.1 x: "
            + ("ok" if ok else "MISSED")
        )
        print("per round, wall (floor, warm, cold, 2x warm):")
        for row in zip(floor, warm, cold, warm_large, strict=True):
            print("  " + "  ".join(f"{t[0]:6.2f}" for t in row))


if __name__ == "__main__":
    main()

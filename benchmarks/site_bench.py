"""Site builds against a floor measured in the same run (issue: the published site).

For a synthetic tracker of 1,000 incidents (3,000 commits) and one of 2,000
(6,000 commits), prints medians of alternating runs (these machines are noisy):

- floor: a plain `mkdocs build` with Material of the same pages written by hand
  (the generated Markdown, copied into a project without our plugin);
- build: `gitops-incidents build` (history walk, ledger, generation, MkDocs),
  with a warm history cache (the daemon, CI with a cached .git) and a cold one
  (a fresh clone);
- build / floor for 1,000 incidents:                         target <= 1.5
- build(2,000) / build(1,000):                               target <= 2.1

Ratios are medians of each round's ratio (a round runs the floor and the builds
back to back). Usage: python -m benchmarks.site_bench [--rounds K] [--small N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.synthetic import generate
from gitops_incidents.mkdocs_plugin import staging_dir

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


def build(repo: Path, *, cold: bool) -> float:
    if cold:
        shutil.rmtree(repo / ".git" / "gitops-incidents", ignore_errors=True)
    out = repo / "out"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(repo), "build", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def hand_written(repo: Path, work: Path) -> Path:
    """A plain MkDocs project with the same pages, theme, nav and search: no plugin."""
    project = work / "plain"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(staging_dir(repo), project / "docs")
    config = (repo / "site" / "mkdocs.yml").read_text().replace("  - gitops-incidents\n", "")
    config += "extra_css: [assets/gitops-incidents.css]\n"
    (project / "mkdocs.yml").write_text(config)
    return project


def plain_build(project: Path) -> float:
    out = project / "out"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(project / "mkdocs.yml"),
         "-d", str(out)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small", type=int, default=1000, help="incidents in the smaller tracker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        small = tracker(work / "small", args.small)
        large = tracker(work / "large", args.small * 2)
        build(small, cold=True)  # writes the generated pages the floor copies
        project = hand_written(small, work)
        floor, warm, cold, warm_large = [], [], [], []
        for _ in range(args.rounds):
            # Each round measures the floor and the builds back to back: the ratios of a
            # round share the machine's mood of the moment.
            floor.append(plain_build(project))
            warm.append(build(small, cold=False))
            cold.append(build(small, cold=True))
            build(large, cold=False)
            warm_large.append(build(large, cold=False))
        pages = sum(1 for _ in (project / "docs").rglob("*.md"))
        warm_ratio = statistics.median(w / f for w, f in zip(warm, floor, strict=True))
        cold_ratio = statistics.median(c / f for c, f in zip(cold, floor, strict=True))
        scale = statistics.median(b / w for b, w in zip(warm_large, warm, strict=True))
        f, w, c, wl = (statistics.median(x) for x in (floor, warm, cold, warm_large))
        print(f"{args.small:,} incidents, {pages:,} pages; medians of {args.rounds} rounds")
        print(f"floor: plain mkdocs build of the same pages: {f:7.2f} s")
        print(f"build, warm history cache:                   {w:7.2f} s  ratio {warm_ratio:.2f}")
        print(f"build, cold (a fresh clone):                 {c:7.2f} s  ratio {cold_ratio:.2f}")
        verdict = "ok" if max(warm_ratio, cold_ratio) <= 1.5 else "MISSED"
        print(f"target: build <= 1.5 x floor; {verdict}")
        print(
            f"{args.small * 2:,} incidents, warm: {wl:7.2f} s; "
            f"ratio to {args.small:,}: {scale:.2f} (target <= 2.1)"
        )
        print("per round (floor, warm, cold, 2x warm):")
        for row in zip(floor, warm, cold, warm_large, strict=True):
            print("  " + "  ".join(f"{x:6.2f}" for x in row))


if __name__ == "__main__":
    main()

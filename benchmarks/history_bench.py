"""History walking against floors measured in the same run (issue: events from git history).

Prints, for a synthetic history of 5,000 commits and 500 incidents:

- cold: a walk with an empty cache / (git log --raw over incidents/ + cat-file --batch of
  the changed blobs + PyYAML's C loader over them);          target <= 1.25
- warm: a walk over history read before (parsed versions and each commit's events
  cached) / git log --raw;                                    target <= 1.5
- incremental: one new commit after a checkpoint, on 5,000 vs 600 commits; target <= 1.10
- memory: peak traced memory of a walk that derives every event, for 4x the history
  (same incidents, same file sizes) and for 4x the incidents; it should follow the incidents

Measurements alternate between the walk and its floor and report medians, because
these machines are noisy. Usage: python -m benchmarks.history_bench [--quick]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import yaml

from benchmarks.synthetic import append_severity_changes, generate
from gitops_incidents import gitcmd
from gitops_incidents.history import History


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def walk(root: Path, since: str | None = None) -> int:
    with History(root) as history:
        return sum(len(step.events) for step in history.walk("HEAD", since=since))


def drop_cache(root: Path) -> None:
    shutil.rmtree(root / ".git" / "gitops-incidents", ignore_errors=True)


def git_log(root: Path) -> bytes:
    return subprocess.run(
        ["git", "log", "--raw", "--no-abbrev", "--", "incidents/"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout


def changed_blobs(raw_log: bytes) -> list[str]:
    return [
        line.split()[3].decode()
        for line in raw_log.splitlines()
        if line.startswith(b":") and line.split()[3].strip(b"0") != b""
    ]


def cat_file(root: Path, blobs: list[str]) -> list[bytes]:
    output = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=root,
        input="".join(f"{b}\n" for b in blobs).encode(),
        capture_output=True,
        check=True,
    ).stdout
    contents, offset = [], 0
    for _ in blobs:
        end = output.index(b"\n", offset)
        size = int(output[offset:end].split()[2])
        contents.append(output[end + 1 : end + 1 + size])
        offset = end + 1 + size + 1
    return contents


def floor(root: Path) -> float:
    """git log --raw + cat-file --batch of the changed blobs + PyYAML's C loader."""
    started = time.perf_counter()
    blobs = changed_blobs(git_log(root))
    for content in cat_file(root, blobs):
        yaml.load(content, Loader=yaml.CSafeLoader)
    return time.perf_counter() - started


def alternate(
    runs: int, measured: Callable[[], float], baseline: Callable[[], float]
) -> tuple[float, float, float]:
    """Median of the measured time, of the baseline, and of their per-pair ratios."""
    pairs = [(measured(), baseline()) for _ in range(runs)]
    return (
        statistics.median(p[0] for p in pairs),
        statistics.median(p[1] for p in pairs),
        statistics.median(p[0] / p[1] for p in pairs),
    )


def add_commit(root: Path, number: int) -> str:
    """Append a comment to two incidents and commit; returns the commit before it."""
    previous = gitcmd.resolve(root, "HEAD")
    for incident in sorted((root / "incidents").iterdir())[number % 400 :][:2]:
        text = incident.read_text()
        if "comments:" not in text:
            text += "comments:\n"
        incident.write_text(text + f"  - text: 'benchmark note {number}'\n    author: bench\n")
    subprocess.run(["git", "commit", "-qam", f"bench {number}"], cwd=root, check=True)
    return previous


def new_commit_costs(long: Path, short: Path, runs: int) -> tuple[float, float, float]:
    """Walking one new commit (two incidents changed) from a checkpoint, on each history,
    alternately: medians of each and of their ratio."""

    def cost(root: Path, number: int) -> float:
        previous = add_commit(root, number)
        started = time.perf_counter()
        walk(root, since=previous)
        return time.perf_counter() - started

    walk(long)  # checkpoints at both tips, and warm caches
    walk(short)
    numbers = itertools.count()
    return alternate(runs, lambda: cost(long, next(numbers)), lambda: cost(short, next(numbers)))


def forget_derivations(root: Path) -> None:
    """Keep the parse cache, drop the cached steps and checkpoints: the next walk derives."""
    with sqlite3.connect(root / ".git" / "gitops-incidents" / "cache.sqlite3") as db:
        db.execute("DELETE FROM steps")
        db.execute("DELETE FROM checkpoints")


def peak_memory(root: Path) -> int:
    """Peak traced memory of a walk that derives every event (the parse cache filled)."""
    walk(root)
    forget_derivations(root)
    gc.collect()
    tracemalloc.start()
    walk(root)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args()
    runs = 3 if args.quick else 9
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        root = generate(base / "h5000", incidents=500, commits=5000, seed=1)
        events = walk(root)
        print(f"history: 5,000 commits, 500 incidents, {events:,} events")

        def cold() -> float:
            drop_cache(root)
            return timed(lambda: walk(root))

        walk_s, floor_s, ratio = alternate(runs, cold, lambda: floor(root))
        print(
            f"cold:  walk {walk_s:.3f} s, floor {floor_s:.3f} s, ratio {ratio:.2f} (target <= 1.25)"
        )

        walk(root)  # the second read of this history: it caches each commit's steps
        walk_s, log_s, ratio = alternate(
            runs, lambda: timed(lambda: walk(root)), lambda: timed(lambda: git_log(root))
        )
        print(
            f"warm:  walk {walk_s:.3f} s, git log --raw {log_s:.3f} s, "
            f"ratio {ratio:.2f} (target <= 1.5)"
        )

        short = generate(base / "h600", incidents=500, commits=600, seed=1)
        long_cost, short_cost, ratio = new_commit_costs(root, short, 2 * runs + 1)
        print(
            f"one new commit: {long_cost * 1000:.1f} ms on 5,000 commits, "
            f"{short_cost * 1000:.1f} ms on 600, ratio {ratio:.2f} (target <= 1.10)"
        )

        print("peak memory of a walk deriving every event (parse cache filled):")
        base_peak = peak_memory(root)
        longer = peak_memory(append_severity_changes(root, 15000))
        print(f"  500 incidents,  5,000 commits: {base_peak / 1e6:5.1f} MB")
        print(
            f"  the same, 15,000 commits more (severity changes: files keep their size): "
            f"{longer / 1e6:5.1f} MB; 4x the history: {longer / base_peak:.2f}x"
        )
        few, many = (
            peak_memory(generate(base / f"m{n}", incidents=n, commits=5000, seed=1))
            for n in (250, 1000)
        )
        print(
            f"  250 / 1,000 incidents, 5,000 commits: {few / 1e6:.1f} / {many / 1e6:.1f} MB; "
            f"4x the incidents: {many / few:.2f}x"
        )


if __name__ == "__main__":
    main()

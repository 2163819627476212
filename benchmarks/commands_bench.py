"""Whole commands as processes, as users and CI run them (issue 15: speed as users meet it).

On seeded synthetic histories of 600, 5,000 and 50,000 commits (60, 500 and 5,000
incidents; benchmarks/synthetic.py), each figure is the median of alternating rounds,
against a floor measured in the same rounds (these machines are noisy):

- `events`, cold (no cache) and warm (read before), against the floor: one process
  that runs git log --raw and git cat-file --batch over the same blobs and loads each
  with PyYAML's C loader;                      target (cold, 5,000 and 50,000) <= 1.5
- `events --since HEAD~1` after one new commit, with the cache warm from the commit
  before, and in a fresh clone that fetched the engine's ref (no cache at all);
- `apply` in a fresh clone (the engine's ref fetched) after one new commit, the way
  the README's CI workflow runs it;
  each of these on 5,000 and 50,000 commits against 600: time and peak memory
                                                               target <= 1.10
- `--help` and `validate` of one incident file (a pre-commit hook runs it on every
  commit), against the interpreter's own start-up;            target 0.15 s and 0.3 s

Peak memory is the child process's maximum resident set (wait4). A fresh clone is a
local `git clone` of a bare origin, made (and its writes flushed to disk) before the
clock starts.

Usage: python -m benchmarks.commands_bench [--rounds K] [--sizes 600,5000,50000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.synthetic import IDENTITY, git

Run = tuple[float, int]  # wall seconds, peak resident memory in KiB
COMMAND = [sys.executable, "-m", "gitops_incidents"]
FLOOR = """
import subprocess, sys, yaml
log = subprocess.run(["git", "log", "--raw", "--no-abbrev", "--", "incidents/"],
                     capture_output=True, check=True).stdout
blobs = [line.split()[3] for line in log.splitlines()
         if line.startswith(b":") and line.split()[3].strip(b"0")]
out = subprocess.run(["git", "cat-file", "--batch"], input=b"\\n".join(blobs) + b"\\n",
                     capture_output=True, check=True).stdout
offset = 0
for _ in blobs:
    end = out.index(b"\\n", offset)
    size = int(out[offset:end].split()[2])
    yaml.load(out[end + 1 : end + 1 + size], Loader=yaml.CSafeLoader)
    offset = end + 2 + size
"""


def measure(command: list[str], cwd: Path) -> Run:
    """Wall time and peak memory of one process (its output discarded)."""
    # The clones and commits made just before are written out first: their writeback
    # (more of it for a larger tracker) would otherwise land in the measured run.
    os.sync()
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, **IDENTITY},
    )  # fmt: skip
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{errors.decode()}")
    return wall, usage.ru_maxrss


def commit(root: Path, number: int) -> None:
    """One new commit on main: a comment on one incident."""
    incident = sorted((root / "incidents").iterdir())[number % 50]
    text = incident.read_text()
    if "comments:" not in text:
        text += "comments:\n"
    incident.write_text(text + f"  - text: 'benchmark note {number}'\n    author: bench\n")
    # A minute after the last commit: the synthetic history runs years past today, and a
    # commit dated before it would make git walk all of it for every A..B range.
    when = f"@{int(git(root, 'log', '-1', '--format=%ct')) + 60} +0000"
    subprocess.run(
        ["git", "commit", "-qam", f"bench {number}"], cwd=root, check=True,
        env={**os.environ, **IDENTITY, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when},
    )  # fmt: skip


class Tracker:
    """One size: an origin, a clone whose cache stays warm, and fresh clones on demand."""

    def __init__(self, work: Path, commits: int) -> None:
        self.work, self.commits = work / str(commits), commits
        # In a process of its own: a child's peak memory counts this one's, forked with it.
        source = self.work / "source"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.synthetic", str(source), f"--size={commits}",
             "--seed=1"], check=True,
        )  # fmt: skip
        git(self.work, "clone", "-q", "--bare", str(source), "origin.git")
        self.origin = self.work / "origin.git"
        # The engine runs once in a clone and publishes its ref: CI's first run.
        self.writer = self.clone("writer")
        measure([*COMMAND, "apply"], self.writer)
        git(self.writer, "push", "-q", "origin", "refs/gitops-incidents/*:refs/gitops-incidents/*")
        self.warm = self.clone("warm")
        for _ in range(2):  # read twice: file versions parsed, then each commit's events
            measure([*COMMAND, "events"], self.warm)
        self.rounds = 0

    def clone(self, name: str) -> Path:
        path = self.work / name
        subprocess.run(["rm", "-rf", str(path)], check=True)
        git(self.work, "clone", "-q", str(self.origin), name)
        git(path, "fetch", "-q", "origin", "refs/gitops-incidents/*:refs/gitops-incidents/*")
        return path

    def new_commit(self) -> None:
        """A commit pushed to the origin (the engine has not seen it); the warm clone
        makes the same change on its own."""
        self.rounds += 1
        commit(self.writer, self.rounds)
        git(self.writer, "push", "-q", "origin", "HEAD:main")
        commit(self.warm, self.rounds)

    def fresh_apply(self) -> Run:
        fresh = self.clone("fresh")
        result = measure([*COMMAND, "apply"], fresh)
        # The engine now stands at the new commit, on the origin too: the next round's
        # commit is again the one new commit.
        git(fresh, "push", "-q", "origin", "refs/gitops-incidents/*:refs/gitops-incidents/*")
        return result

    def fresh_since(self) -> Run:
        return measure([*COMMAND, "events", "--since", "HEAD~1"], self.clone("fresh"))

    def warm_since(self) -> Run:
        return measure([*COMMAND, "events", "--since", "HEAD~1"], self.warm)

    def events(self, *, cold: bool) -> Run:
        if cold:
            subprocess.run(["rm", "-rf", str(self.warm / ".git" / "gitops-incidents")], check=True)
        return measure([*COMMAND, "events"], self.warm)

    def floor(self) -> Run:
        return measure([sys.executable, "-c", FLOOR], self.warm)


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sizes", default="600,5000,50000", help="commits, from benchmarks.synthetic.SIZES"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        started = time.perf_counter()
        trackers = {size: Tracker(work, size) for size in sizes}
        print(
            f"set up {', '.join(f'{s:,}' for s in sizes)} commits "
            f"in {time.perf_counter() - started:.0f} s"
        )

        # In this order: the fresh clone's events start where the engine stands, before
        # the apply moves it to the new commit.
        scenarios: dict[str, Callable[[Tracker], Run]] = {
            "events --since HEAD~1, fresh clone": Tracker.fresh_since,
            "apply, fresh clone": Tracker.fresh_apply,
            "events --since HEAD~1, cache warm": Tracker.warm_since,
        }
        runs: dict[tuple[str, int], list[Run]] = {}
        for _ in range(args.rounds):
            for tracker in trackers.values():
                tracker.new_commit()
            # Sizes alternate within a round: a round's ratios share the machine's mood.
            for name, scenario in scenarios.items():
                for size, tracker in trackers.items():
                    runs.setdefault((name, size), []).append(scenario(tracker))
        base = sizes[0]
        print(
            f"\nafter one new commit, medians of {args.rounds} rounds "
            f"(target: within 1.10x of {base:,})"
        )
        for name in scenarios:
            print(f"  {name}")
            for size in sizes:
                mine, floor = runs[(name, size)], runs[(name, base)]
                time_ratio = median([m[0] / f[0] for m, f in zip(mine, floor, strict=True)])
                memory_ratio = median([m[1] / f[1] for m, f in zip(mine, floor, strict=True)])
                if size != base:
                    ok = ok and time_ratio <= 1.10 and memory_ratio <= 1.10
                print(
                    f"    {size:>6,} commits: {median([m[0] for m in mine]):6.3f} s "
                    f"{median([m[1] for m in mine]) / 1024:6.1f} MiB | x{time_ratio:.2f} time, "
                    f"x{memory_ratio:.2f} memory"
                )

        print(
            f"\nevents, whole history, against the floor (git + C YAML), "
            f"medians of {args.rounds} rounds"
        )
        for size, tracker in trackers.items():
            cold, warm, floor = [], [], []
            for _ in range(args.rounds):
                floor.append(tracker.floor())
                cold.append(tracker.events(cold=True))
                tracker.events(cold=False)  # the second read caches each commit's events
                warm.append(tracker.events(cold=False))
            cold_ratio = median([c[0] / f[0] for c, f in zip(cold, floor, strict=True)])
            targeted = size != base  # as for the rounds above: the larger histories
            warm_ratio = median([w[0] / f[0] for w, f in zip(warm, floor, strict=True)])
            ok = ok and (not targeted or cold_ratio <= 1.5)
            goal = " (target <= 1.5)" if targeted else ""
            print(
                f"  {size:>6,} commits: floor {median([f[0] for f in floor]):6.2f} s | cold "
                f"{median([c[0] for c in cold]):6.2f} s x{cold_ratio:.2f}{goal} | warm "
                f"{median([w[0] for w in warm]):6.2f} s x{warm_ratio:.2f}"
            )

        tracker = trackers[base]
        incident = next((tracker.warm / "incidents").iterdir()).relative_to(tracker.warm)
        starts = {
            "python -c pass (the floor)": [sys.executable, "-c", "pass"],
            "--help": [*COMMAND, "--help"],
            f"validate {incident}": [*COMMAND, "validate", str(incident)],
        }
        timings: dict[str, list[float]] = {label: [] for label in starts}
        for _ in range(max(args.rounds, 5) * 2):
            for label, command in starts.items():
                timings[label].append(measure(command, tracker.warm)[0])
        print(f"\nstart-up, medians of {len(timings['--help'])} runs")
        floor_s = median(timings["python -c pass (the floor)"])
        for (label, values), target in zip(timings.items(), (None, 0.15, 0.3), strict=True):
            figure = median(values)
            if target is not None:
                ok = ok and figure <= target
            goal = f" (target <= {target} s)" if target else ""
            print(f"  {label}: {figure:.3f} s, x{figure / floor_s:.1f} the floor{goal}")
    print("\nall targets met" if ok else "\nsome targets missed")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()

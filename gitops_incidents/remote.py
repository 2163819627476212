"""The daemon's remote (`watch --remote NAME`): the branch and the engine's ref fetched
on each poll, and every compare-and-swap of the engine made on the remote first.

The remote is where runners on several hosts meet, so it is where their races are
decided: a ledger write is an atomic push of the engine's ref with a lease on its
value there, and a commit action's commit is pushed in the same atomic push as the
ledger's record of it. Only after the remote took a push do the local refs move. A
rejected push means another runner (or a person) got there first: the winner is
fetched and the caller reads again, as after a local lost race.

The local branch only ever fast-forwards to the remote's. Commits of this clone that
the remote lacks are not published behind anyone's back: the daemon says so and waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gitops_incidents import gitcmd
from gitops_incidents.errors import UsageError

if TYPE_CHECKING:
    import git


class Remote:
    def __init__(self, root: Path, name: str, branch_ref: str, engine_ref: str) -> None:
        import git  # GitPython: the remote as git's configuration names it

        try:
            self._remote: git.Remote = git.Repo(root).remote(name)
        except (ValueError, git.GitError):
            raise UsageError(f"no remote named {name!r} (see git remote -v)") from None
        self.root, self.name = root, name
        self.branch_ref, self.engine_ref = branch_ref, engine_ref
        branch = branch_ref.removeprefix("refs/heads/")
        self.branch_tracking = f"refs/remotes/{name}/{branch}"
        # Outside refs/gitops-incidents/: a push of that namespace never carries it.
        self.engine_tracking = engine_ref.replace(
            "refs/gitops-incidents/", f"refs/gitops-incidents-remotes/{name}/", 1
        )

    def sync(self) -> str | None:
        """Fetch; bring the local engine ref to the remote's (publishing it there if the
        remote has none yet) and fast-forward the branch, files included where it is
        checked out. What keeps the branch from following, if anything."""
        self._fetch()
        if not self._sync_engine():
            self._fetch()
            self._sync_engine()
        return self.follow()

    def push(self, moves: dict[str, tuple[str, str | None]]) -> bool:
        """Move each ref to its new commit on the remote, all or none, if each is still
        at its expected value there (None: absent); then locally. False if the remote had
        moved: its refs are fetched and the local engine ref is brought to its."""
        leases = [f"--force-with-lease={ref}:{old or ''}" for ref, (_, old) in moves.items()]
        specs = [f"{new}:{ref}" for ref, (new, _) in moves.items()]
        status, out, err = self._remote.repo.git.push(
            "--atomic", "--porcelain", *leases, self.name, *specs,
            with_extended_output=True, with_exceptions=False,
        )  # fmt: skip
        if status == 0:
            tracking = {
                self.engine_ref: self.engine_tracking,
                self.branch_ref: self.branch_tracking,
            }
            local = {ref: new for ref, (new, _) in moves.items()}
            local |= {tracking[ref]: new for ref, new in local.items()}
            gitcmd.set_refs(self.root, local, "gitops-incidents push")
            return True
        if any(line.startswith("!") for line in out.splitlines()):
            self._fetch()
            self._sync_engine()
            return False
        raise gitcmd.GitError(f"git push {self.name} failed: {_last_line(err)}")

    def remote_branch(self) -> str | None:
        return gitcmd.ref_value(self.root, self.branch_tracking)

    # -- steps

    def _fetch(self) -> None:
        branch = self.branch_ref.removeprefix("refs/heads/")
        specs = [
            f"+{self.branch_ref}:{self.branch_tracking}",
            # A pattern: a remote without the engine's ref yet is no error.
            f"+refs/gitops-incidents/*:refs/gitops-incidents-remotes/{self.name}/*",
        ]
        status, _, err = self._remote.repo.git.fetch(
            "--quiet", "--no-tags", "--no-write-fetch-head", self.name, *specs,
            with_extended_output=True, with_exceptions=False,
        )  # fmt: skip
        if status != 0:
            raise gitcmd.GitError(f"git fetch {self.name} {branch} failed: {_last_line(err)}")

    def _sync_engine(self) -> bool:
        """The local engine ref set to the remote's; False if a push of the local one
        (the remote had none) lost a race."""
        remote = gitcmd.ref_value(self.root, self.engine_tracking)
        local = gitcmd.ref_value(self.root, self.engine_ref)
        if remote is None:
            return local is None or self.push({self.engine_ref: (local, None)})
        if local != remote:
            # Never ahead of the remote's: every local write was pushed there first.
            gitcmd.set_refs(self.root, {self.engine_ref: remote}, "gitops-incidents fetch")
        return True

    def follow(self, staged: str | None = None) -> str | None:
        """Fast-forward the branch to the remote's, with the index and files where it is
        checked out (from `staged`, what they hold, if not the branch's tip); what keeps
        it from following, if anything."""
        tip = gitcmd.ref_value(self.root, self.branch_tracking)
        local = gitcmd.ref_value(self.root, self.branch_ref)
        if tip is None or local == tip:
            return None
        if local is not None and not gitcmd.is_ancestor(self.root, local, tip):
            ahead = gitcmd.run(self.root, "rev-list", "--count", f"{tip}..{local}").strip()
            return (
                f"{self.branch_ref} has {ahead} commit(s) that {self.name} lacks: push them "
                f"or reset the branch to {self.branch_tracking}; until then the daemon "
                "follows neither"
            )
        files = staged or local
        if (
            files is not None
            and gitcmd.checked_out(self.root, self.branch_ref)
            and not gitcmd.move_files(self.root, files, tip)
        ):
            return (
                f"changes not committed in the working tree are in the way of {tip[:12]} "
                f"from {self.name}: commit or stash them"
            )
        gitcmd.update_ref(self.root, self.branch_ref, tip, local)
        return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"

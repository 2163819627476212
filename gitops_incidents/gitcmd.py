"""The git processes history is read through: one `git log -z --raw` stream for
the main line and one long-lived `git cat-file --batch` for file contents.

A process per commit, or GitPython's diff API, is 50-100x slower on long
histories; these two processes are all a walk starts, whatever its length.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import subprocess
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import IO, NamedTuple, cast

from gitops_incidents.errors import Error

# Unit separator between header fields; names, emails and dates never hold it.
_SEP = "\x1f"
ACTION_TRAILER = "Gitops-Incidents-Action"
_HEADER = _SEP.join(
    [
        *("%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%ct"),
        f"%(trailers:key={ACTION_TRAILER},valueonly,separator=%x20)",
    ]
)
REGULAR = "100644"
# History as committed: a replacement (`git replace`) is a local view that neither the
# ledger, the cache (keyed by commit id) nor another clone shares. `replacements` lists them.
GIT = ("git", "--no-replace-objects")


class GitError(Error):
    """git failed, or the repository cannot be read as asked: exit 1."""


class UnknownRevision(GitError):
    """A revision that names no commit: the revisions resolved come from the command
    line (or the configured branch), so a usage error, exit 2."""

    status = 2


def run(root: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> str:
    return run_bytes(root, *args, stdin=stdin, env=env).decode(errors="surrogateescape")


def run_bytes(
    root: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> bytes:
    result = subprocess.run(
        [*GIT, "-C", str(root), *args],
        input=stdin,
        capture_output=True,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise GitError(stderr or f"git {' '.join(args)} failed")
    return result.stdout


def resolve(root: Path, rev: str) -> str:
    """The commit id `rev` names; GitError if it names none."""
    try:
        return run(
            root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        ).strip()
    except GitError:
        if ref_value(root, "HEAD") is None and not run(root, "rev-list", "-n1", "--all").strip():
            raise GitError("the repository has no commits yet") from None
        raise UnknownRevision(f"{rev!r} is not a commit in this repository") from None


def git_dir(root: Path) -> Path:
    """The repository's common git directory (shared by its worktrees)."""
    return (root / run(root, "rev-parse", "--git-common-dir").strip()).resolve()


def is_ancestor(root: Path, commit: str, tip: str) -> bool:
    """Whether `commit` is in the history of `tip` (False too if it no longer exists)."""
    try:
        run(root, "merge-base", "--is-ancestor", commit, tip)
    except GitError:
        return False
    return True


def check_not_shallow(root: Path) -> None:
    if run(root, "rev-parse", "--is-shallow-repository").strip() == "true":
        raise GitError(
            "this is a shallow clone, so its history is incomplete: fetch the whole history "
            "(git fetch --unshallow; in GitHub Actions, actions/checkout with fetch-depth: 0)"
        )


# NamedTuples, not frozen dataclasses: a long history makes many, and they build faster.
class Change(NamedTuple):
    """One file changed by a commit against its first parent."""

    status: str  # A, M, D, T
    path: str  # a name that is not UTF-8 keeps its bytes as surrogates (`readable` shows it)
    old_blob: str | None
    new_blob: str | None
    mode: str = REGULAR  # of the new version: a regular file, a symlink, a gitlink


class Commit(NamedTuple):
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored: str  # ISO 8601 with the author's offset, as git has it
    committer_name: str
    committer_email: str
    committed: str
    committed_epoch: int
    actions: tuple[str, ...]  # invocation keys of its action trailers: an engine commit
    changes: tuple[Change, ...]


def log(root: Path, revisions: Sequence[str], paths: Sequence[str]) -> Iterator[Commit]:
    """Every first-parent commit of `revisions`, oldest first, with its changes under `paths`.

    `--sparse --full-history` keep commits that change none of `paths` (their
    times still count along the main line); merges are diffed against their
    first parent; renames are a deletion and an addition.
    """
    args = [
        *GIT, "-C", str(root), "log", "-z", "--reverse", "--first-parent", "--sparse",
        "--full-history", "--diff-merges=first-parent", "--raw", "--no-renames", "--no-abbrev",
        f"--format={_HEADER}", *revisions, "--", *paths,
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    chunks = _drain(process.stdout)
    complete = False
    try:
        yield from _parse_log(_tokens(chunks))
        complete = True
    finally:
        if not complete and process.poll() is None:
            process.terminate()  # the consumer stopped early: so does git
        chunks.close()
        process.stdout.close()
        stderr = process.stderr.read().decode(errors="replace")
        process.stderr.close()
        if process.wait() != 0 and complete:
            raise GitError(stderr.strip() or "git log failed")


def _drain(stream: IO[bytes], size: int = 1 << 16, ahead: int = 8) -> Generator[bytes]:
    """The stream's bytes, read ahead by a thread: git does not wait on a full pipe
    while the caller works, so the two run side by side. At most `ahead` chunks
    wait, so memory does not grow with the length of history."""
    buffered = cast(io.BufferedReader, stream)  # what Popen gives, with read1
    chunks: queue.Queue[bytes] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(chunk: bytes) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                chunks.put(chunk, timeout=0.05)
                return

    def read() -> None:
        try:
            while chunk := buffered.read1(size):
                put(chunk)
        finally:
            put(b"")  # the end, also after an error

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while chunk := chunks.get():
            yield chunk
    finally:
        # A consumer that stops early must not leave the thread blocked on a full queue;
        # the caller ends git first, so the thread's read returns.
        stop.set()
        reader.join()


def _tokens(chunks: Iterator[bytes]) -> Iterator[list[str]]:
    """The NUL-terminated tokens of a byte stream, decoded, a list per chunk read."""
    pending = b""
    for chunk in chunks:
        parts = (pending + chunk).split(b"\0")
        pending = parts.pop()
        yield [part.decode("utf-8", errors="surrogateescape") for part in parts]
    if pending:
        yield [pending.decode("utf-8", errors="surrogateescape")]


def _parse_log(token_lists: Iterator[list[str]]) -> Iterator[Commit]:
    header: list[str] | None = None
    changes: list[Change] = []
    path_next: list[str] | None = None  # a raw entry whose path is in the next token
    for tokens in token_lists:
        for token in tokens:
            if path_next is not None:
                _, mode, old, new, status = path_next
                changes.append(
                    Change(
                        status[0],
                        token,
                        old if old.strip("0") else None,  # all zeros: no such side
                        new if new.strip("0") else None,
                        mode,
                    )
                )
                path_next = None
                continue
            meta = token.lstrip("\n")
            if meta[:1] == ":" and header is not None:
                # ":<old mode> <new mode> <old blob> <new blob> <status>", then the path
                path_next = meta[1:].split(" ")
                continue
            if header is not None:
                yield _commit(header, changes)
            header, changes = meta.split(_SEP), []
    if header is not None:
        yield _commit(header, changes)


def _commit(fields: list[str], changes: list[Change]) -> Commit:
    sha, parents, an, ae, ad, cn, ce, cd, ct, actions = fields
    an, ae, cn, ce = (name if name.isascii() else text(name) for name in (an, ae, cn, ce))
    return Commit(
        sha, tuple(parents.split()), an, ae, ad, cn, ce, cd, int(ct), tuple(actions.split()),
        tuple(changes),
    )  # fmt: skip


def text(value: str) -> str:
    """Bytes git gave that are not UTF-8 (kept as surrogates), as printable text."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def readable(path: str) -> str:
    """A path for people: bytes that are not UTF-8 shown as \\xNN escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def replacements(root: Path) -> list[str]:
    """The commits replaced by `git replace` here: history is read without them."""
    listing = run(root, "for-each-ref", "--format=%(refname)", "refs/replace/")
    return [line.removeprefix("refs/replace/") for line in listing.splitlines()]


class Blobs:
    """A long-lived `git cat-file --batch`: file contents by blob id.

    `read_many` writes the requests from a thread while it reads the answers,
    so neither side of the pipe waits on the other however many are asked.
    """

    def __init__(self, root: Path) -> None:
        self._process = subprocess.Popen(
            [*GIT, "-C", str(root), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def read_many(self, blobs: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        stdin, stdout = process.stdin, process.stdout

        def write() -> None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                stdin.write("".join(f"{blob}\n" for blob in blobs).encode())
                stdin.flush()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        done = 0
        try:
            for blob, content in _answers(stdout, blobs):
                if content is None:
                    raise GitError(f"cannot read blob {blob}: missing")
                done += 1
                yield blob, content
        finally:
            if done < len(blobs):
                # Abandoned midway: answers would stay in the pipe, and the writer could
                # wait on a full one. End cat-file; this reader is spent.
                process.kill()
            writer.join()

    def close(self) -> None:
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe:
                with contextlib.suppress(BrokenPipeError):  # cat-file was ended early
                    pipe.close()
        self._process.wait()

    def __enter__(self) -> Blobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answers(stdout: IO[bytes], wanted: Sequence[str]) -> Iterator[tuple[str, bytes | None]]:
    """`git cat-file --batch`'s answers to `wanted`, in order: each object's content, or
    None for one the repository lacks."""
    for name in wanted:
        header = stdout.readline().split()
        if len(header) != 3:
            yield name, None  # "<name> missing"
            continue
        yield name, stdout.read(int(header[2]) + 1)[:-1]  # drop the trailing newline


# -- writing: objects and compare-and-swap ref updates, without a working tree --------


def object_id(data: bytes, like: str, kind: str = "blob") -> str:
    """The id git gives `data` as an object of `kind`, in the format of the id `like`
    (SHA-1, or SHA-256 in a repository made with --object-format=sha256)."""
    digest = hashlib.sha256() if len(like) == 64 else hashlib.sha1()
    digest.update(b"%s %d\0" % (kind.encode(), len(data)))
    digest.update(data)
    return digest.hexdigest()


def read_objects(root: Path, ids: Sequence[str]) -> dict[str, bytes]:
    """The contents of the objects among `ids` that the repository has, in one
    `git cat-file --batch`; those it lacks are left out."""
    if not ids:
        return {}
    output = run_bytes(root, "cat-file", "--batch", stdin="".join(f"{i}\n" for i in ids).encode())
    answers = _answers(io.BytesIO(output), ids)
    return {name: content for name, content in answers if content is not None}


def list_tree(root: Path, tree: str) -> dict[str, str] | None:
    """Every file under the tree-ish `tree` (`<commit>:<folder>`), by path, with its
    blob id; None if there is no such tree."""
    result = subprocess.run(
        [*GIT, "-C", str(root), "ls-tree", "-r", "-z", "--full-tree", tree],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    listing = {}
    for entry in result.stdout.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        if path:
            listing[path.decode(errors="surrogateescape")] = meta.split()[2].decode()
    return listing


def read_blob(root: Path, rev: str, path: str) -> bytes | None:
    """The content of `path` at commit `rev`, or None if it has no such file."""
    result = subprocess.run(
        [*GIT, "-C", str(root), "cat-file", "blob", f"{rev}:{path}"],
        capture_output=True,
        check=False,
    )
    return result.stdout if result.returncode == 0 else None


def ref_value(root: Path, ref: str) -> str | None:
    """The commit `ref` points at, or None if it does not exist."""
    try:
        return run(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip() or None
    except GitError:
        return None


def peek_ref(common_dir: Path, ref: str) -> str | None:
    """What a branch ref holds, read from its file or packed-refs, without starting a
    process (the daemon's poll); as `ref_value` where the files say anything else
    (a symbolic ref, the reftable format)."""
    try:
        loose = (common_dir / ref).read_text().strip()
    except FileNotFoundError:
        loose = ""
    except OSError:
        return ref_value(common_dir, ref)
    if len(loose) == 40 and not (common_dir / "reftable").exists():
        return loose
    if loose or (common_dir / "reftable").exists():
        return ref_value(common_dir, ref)
    try:
        packed = (common_dir / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        value, _, name = line.partition(" ")
        if name == ref:
            return value
    return None


def fanned(folder: str, name: str) -> str:
    """Where `name` is kept under `folder` in a tree of many: `<folder>/<ab>/<name>`, <ab>
    two hex digits of a hash of the name, so that no tree grows large (as git's notes)."""
    fan = hashlib.sha1(name.encode()).hexdigest()[:2]  # a spread of names, not a secret
    return f"{folder}/{fan}/{name}"


# fast-import names a ref for each commit it writes; this one is reset before the end, so
# no ref is ever written (the callers publish commits by compare-and-swap).
_SCRATCH = b"refs/gitops-incidents-scratch/commit"


def commit_tree(
    root: Path,
    parent: str | None,
    files: dict[str, bytes | None],
    message: str,
    env: dict[str, str] | None = None,
) -> str:
    """A new commit: `parent`'s tree with `files` written (None: a file or a whole folder
    removed, in the order given). Nothing else changes: no ref, no index, no working
    tree. One `git fast-import` writes it all, however many files. `env` sets the
    identity; git's own GIT_AUTHOR_DATE and GIT_COMMITTER_DATE apply."""
    env = env or {}
    data = message.encode()
    stream = [
        b"feature done\nfeature get-mark\ncommit %s\nmark :1\n" % _SCRATCH,
        b"author %s\ncommitter %s\n"
        % (_ident(root, "AUTHOR", env), _ident(root, "COMMITTER", env)),
        b"data %d\n%s\n" % (len(data), data),
        b"from %s\n" % parent.encode() if parent else b"",
    ]
    for path, content in files.items():
        if content is None:
            stream.append(b"D %s\n" % _quoted(path))
        else:
            stream.append(
                b"M 100644 inline %s\ndata %d\n%s\n" % (_quoted(path), len(content), content)
            )
    stream.append(b"\nget-mark :1\nreset %s\n\ndone\n" % _SCRATCH)
    output = run(
        root, "fast-import", "--quiet", "--date-format=raw", stdin=b"".join(stream), env=env
    )
    return output.strip()


def _ident(root: Path, role: str, env: dict[str, str]) -> bytes:
    """`Name <email> epoch zone` as git would write it: from `env` when it names one
    plainly and sets no date, or else from `git var` (configuration, dates, clean-up)."""
    name, email = env.get(f"GIT_{role}_NAME", ""), env.get(f"GIT_{role}_EMAIL", "")
    dated = f"GIT_{role}_DATE" in env or f"GIT_{role}_DATE" in os.environ
    if name and email and not dated and not any(c in name + email for c in "<>\n"):
        return f"{name} <{email}> {int(time.time())} +0000".encode()
    return run_bytes(root, "var", f"GIT_{role}_IDENT", env=env).strip()


def _quoted(path: str) -> bytes:
    """A path as fast-import reads it: C-style quoted when it needs to be."""
    raw = path.encode(errors="surrogateescape")
    if not any(c in raw for c in b'"\\\n') and not raw.startswith(b" "):
        return raw
    escaped = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"' + escaped + b'"'


def set_refs(root: Path, refs: dict[str, str], reason: str) -> None:
    """Set each ref to its commit, whatever it held, in one transaction (one process)."""
    lines = "".join(f"update {ref} {new}\n" for ref, new in refs.items())
    run(root, "update-ref", "-m", reason, "--stdin", stdin=lines.encode())


def checked_out(root: Path, ref: str) -> bool:
    try:
        return run(root, "symbolic-ref", "-q", "HEAD").strip() == ref
    except GitError:
        return False  # detached, or a bare repository


def move_files(root: Path, old: str, new: str) -> bool:
    """Bring the index and the working tree along from commit `old` to `new`: git's
    two-tree merge, which refuses (False) where changes not committed are in the way."""
    try:
        run(root, "read-tree", "-m", "-u", old, new)
    except GitError:
        return False
    return True


def update_ref(root: Path, ref: str, new: str, expected: str | None) -> bool:
    """Move `ref` to `new` if it is still at `expected` (None: it must not exist).
    False if another writer got there first."""
    attempt = 0
    while True:
        try:
            run(root, "update-ref", "-m", "gitops-incidents", ref, new, expected or "0" * len(new))
            return True
        except GitError:
            if ref_value(root, ref) != expected:
                return False  # lost the race: the caller reads again and retries
            attempt += 1
            if attempt == 50:
                raise
            time.sleep(0.02 * (1 + attempt % 5))  # another writer holds the ref's lock

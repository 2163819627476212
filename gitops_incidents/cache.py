"""The history cache under the repository's git directory (one SQLite file).

- parsed: each file version's validation result, keyed by blob id (and what
  else validation depends on); content-addressed, so never invalidated.
- steps: each commit's events and findings, keyed by commit id (which names
  the whole history before it), so a walk over known history only replays.
- states: incident states, keyed by the id of their blob in git (snapshot.py),
  so the engine's snapshot and this cache name a state alike.
- checkpoints: where a walk ended (a commit) and the state there, so the next
  walk starts from it and costs what the new commits changed.

Values are marshal-encoded (plain containers only; several times faster to
read than JSON, and a cache is local to one machine and Python). Keys carry a
fingerprint of the code that produced the values, so an upgrade never reads a
stale entry. SQLite's locking lets several processes share the file.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import marshal
import queue
import sqlite3
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gitops_incidents import __version__

KEEP_CHECKPOINTS = 16
# Incident states of the last load of many, by content address (Cache.states).
_RECENT: dict[str, Any] = {}


PACKAGE = Path(__file__).parent


def code_fingerprint(package: Path = PACKAGE) -> str:
    """The package's version and the bytes of every one of its modules: what made each
    cached value. Any change of code, an upgrade or an edit, gives a new fingerprint,
    so no value made by other code is ever read (which module's output a table holds
    would be one more thing to keep right by hand)."""
    digest = hashlib.sha256(__version__.encode())
    for module in sorted(package.rglob("*.py")):
        digest.update(b"\0" + module.relative_to(package).as_posix().encode() + b"\0")
        digest.update(module.read_bytes())
    return digest.hexdigest()[:12]


class CacheDamaged(Exception):
    """A value a walk must have (an incident state a checkpoint names) is missing or
    damaged."""


class _Damaged(Exception):
    pass


def _pack(key: str, value: Any) -> bytes:
    """A value, with a checksum of its key and bytes: a damaged row (bad bytes, or a
    value moved to another key) is found when read, and derived again."""
    data = marshal.dumps(value)
    return zlib.crc32(data, zlib.crc32(key.encode())).to_bytes(4, "big") + data


def _unpack(key: str, stored: bytes) -> Any:
    if not isinstance(stored, bytes):
        raise _Damaged(key)
    data = stored[4:]
    if stored[:4] != zlib.crc32(data, zlib.crc32(key.encode())).to_bytes(4, "big"):
        raise _Damaged(key)
    return marshal.loads(data)


CODE = code_fingerprint()
# marshal's format may change between Python versions: they count as code too.
FINGERPRINT = hashlib.sha256(f"{CODE} {sys.version}".encode()).hexdigest()[:12]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # A cache: losing the last writes to a power cut costs a re-parse, not data.
    db.execute("PRAGMA synchronous=OFF")
    return db


_SCHEMA = """
    CREATE TABLE IF NOT EXISTS parsed (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS states (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS checkpoints (
        key TEXT PRIMARY KEY, created INTEGER, value BLOB
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS histories (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS impact (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
"""


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path)
    db.executescript(_SCHEMA)
    return db


def _in_memory() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(_SCHEMA)
    return db


class Cache:
    def __init__(self, path: Path, *, writable: bool = True) -> None:
        self.writable, self.path, self._closed = writable, path, False
        # What the last batches stored: those in the writer's queue, and the one it writes.
        self._unwritten: collections.deque[dict[str, Any]] = collections.deque(maxlen=4)
        if not writable:
            # Nothing under .git changes (`plan`): not even the files SQLite makes to
            # read a database shared with writers. A cache of this walk only.
            self._db = _in_memory()
            return
        try:
            self._db = _open(path)
        except sqlite3.DatabaseError:
            # Not a database (a crash mid-write, a stray file): a cache is rebuilt.
            for leftover in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
            self._db = _open(path)
        except OSError:
            # A read-only .git: cache in a temporary folder for this run only.
            path = self.path = Path(tempfile.mkdtemp(prefix="gitops-incidents-")) / path.name
            self._db = _open(path)

        # Bulk writes go through a thread of their own: SQLite works without the GIL,
        # so a walk goes on parsing while its results are written.
        self._writes: queue.Queue[dict[str, list[tuple[str, bytes]]] | None] = queue.Queue(2)
        self._writer = threading.Thread(target=self._write, args=(path,), daemon=True)
        self._writer.start()

    def close(self) -> None:
        if self.writable:
            self._writes.put(None)
            self._writer.join()
        self._db.close()
        self._closed = True

    def _write(self, path: Path) -> None:
        db = _connect(path)
        try:
            while (tables := self._writes.get()) is not None:
                try:
                    with _Transaction(db):
                        for table, rows in tables.items():
                            db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", rows)
                except sqlite3.Error:
                    pass  # a cache: what is not written is derived again next time
                finally:
                    self._writes.task_done()
        finally:
            db.close()

    # -- parsed file versions

    def _get(self, table: str, keys: Iterable[str]) -> dict[str, Any]:
        """Values made by this code (its fingerprint) among `keys`; a damaged one is
        left out (derived again, and written over)."""
        prefix = len(FINGERPRINT) + 1
        wanted = [f"{FINGERPRINT}/{key}" for key in keys]
        found = {}
        for key, value in _select(self._db, table, wanted):
            with contextlib.suppress(_Damaged):
                found[key[prefix:]] = _unpack(key, value)
        return found

    def store(self, **tables: Iterable[tuple[str, Any]]) -> None:
        """Add (key, value) items to the `parsed` and `steps` tables, in one transaction,
        written in the background (`close` waits for it)."""
        items = {table: list(tables.get(table, ())) for table in ("parsed", "steps")}
        # Until the writer has stored them, the versions just parsed are looked up here.
        self._unwritten.append(dict(items["parsed"]))
        if not self.writable or not any(items.values()):
            return
        rows = {
            table: [
                (k, _pack(k, value))
                for k, value in ((f"{FINGERPRINT}/{key}", v) for key, v in found)
            ]
            for table, found in items.items()
        }
        self._writes.put(rows)

    def parsed(self, keys: Iterable[str]) -> dict[str, Any]:
        """Validation results of file versions parsed before (a file set back to an
        earlier version in the same walk, too), without waiting for the writer."""
        wanted = list(keys)
        found = {key: batch[key] for batch in self._unwritten for key in wanted if key in batch}
        return found | self._get("parsed", (key for key in wanted if key not in found))

    # -- what each commit gave: a commit id names its whole history, so never stale

    def commit_steps(self, commits: Iterable[str]) -> dict[str, Any]:
        return self._get("steps", commits)

    # -- incident states and checkpoints

    def states(self, keys: Iterable[str]) -> dict[str, Any]:
        """Incident states by content address, those the cache has (a damaged one is
        left out). Those of the last load of many (every incident, as each run of the
        daemon loads them) are kept in memory: content-addressed, they are never stale,
        and only one checkpoint's worth is kept. Callers rebind a state's fields, never
        change them in place, so the kept values are shared. Once the cache is closed,
        states are read on a connection of their own (they are read when asked for)."""
        wanted = list(keys)
        found = {key: _RECENT[key] for key in wanted if key in _RECENT}
        missing = [key for key in wanted if key not in found]
        if missing and self._closed and self.writable:
            with contextlib.closing(_connect(self.path)) as db:
                rows = _select(db, "states", missing)
        elif missing and not self._closed:
            rows = _select(self._db, "states", missing)
        else:
            rows = []
        for key, value in rows:
            with contextlib.suppress(_Damaged):
                found[key] = _unpack(key, value)
        if len(wanted) > 1:
            _RECENT.clear()
            _RECENT.update(found)
        return found

    def checkpoint(self, commit: str) -> dict[str, Any] | None:
        header: dict[str, Any] | None = self._one("checkpoints", f"{FINGERPRINT}/{commit}")
        return header

    def _one(self, table: str, key: str) -> Any:
        row = self._db.execute(f"SELECT value FROM {table} WHERE key = ?", (key,)).fetchone()
        try:
            return _unpack(key, row[0]) if row else None
        except _Damaged:
            return None

    def clear(self) -> None:
        """Forget everything (a damaged cache is rebuilt); best effort."""
        with contextlib.suppress(sqlite3.Error), self._transaction():
            for table in ("parsed", "states", "steps", "checkpoints", "histories", "impact"):
                self._db.execute(f"DELETE FROM {table}")

    def store_checkpoint(self, commit: str, header: dict[str, Any], states: dict[str, Any]) -> None:
        """Save the walk's end: its header, and the incident states it names (by content
        address: those saved before are kept as they are)."""
        if not self.writable:
            return
        rows = [(key, _pack(key, value)) for key, value in states.items()]
        # Best effort, like every write here: a checkpoint not saved (another runner held
        # the file too long) only means the next walk starts further back.
        with contextlib.suppress(sqlite3.OperationalError), self._transaction():
            self._db.executemany("INSERT OR IGNORE INTO states VALUES (?, ?)", rows)
            self._db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, strftime('%s','now'), ?)",
                (f"{FINGERPRINT}/{commit}", _pack(f"{FINGERPRINT}/{commit}", header)),
            )
            self._db.execute(
                "DELETE FROM checkpoints WHERE key NOT IN "
                "(SELECT key FROM checkpoints ORDER BY created DESC, key LIMIT ?)",
                (KEEP_CHECKPOINTS,),
            )

    # -- every incident's events as of the newest tip read whole (incident_histories)

    def histories(self) -> tuple[str, dict[str, Any]] | None:
        """(tip, events by incident) of the last whole read, if any."""
        found: tuple[str, dict[str, Any]] | None = self._one("histories", f"{FINGERPRINT}/latest")
        return found

    def store_histories(self, tip: str, events: dict[str, Any]) -> None:
        """Keep one: the newest read replaces the one before (best effort)."""
        if not self.writable:
            return
        value = _pack(f"{FINGERPRINT}/latest", (tip, events))
        with contextlib.suppress(sqlite3.OperationalError), self._transaction():
            self._db.execute("DELETE FROM histories")
            self._db.execute(
                "INSERT INTO histories VALUES (?, ?)", (f"{FINGERPRINT}/latest", value)
            )

    # -- impact figures from Prefect of incidents whose window is closed: they never change

    def impact(self, key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._one("impact", f"{FINGERPRINT}/{key}")
        return found

    def store_impact(self, key: str, figures: dict[str, Any]) -> None:
        if not self.writable:
            return
        stored = f"{FINGERPRINT}/{key}"
        with contextlib.suppress(sqlite3.OperationalError), self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO impact VALUES (?, ?)", (stored, _pack(stored, figures))
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def _select(db: sqlite3.Connection, table: str, keys: list[str]) -> list[tuple[str, bytes]]:
    rows: list[tuple[str, bytes]] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT key, value FROM {table} WHERE key IN ({marks})"
        rows += db.execute(query, chunk).fetchall()
    return rows


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")

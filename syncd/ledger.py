"""The ledger: one SQLite file holding everything syncd knows.

Shape, and why:

- ``objects`` keeps each remote object's text, so a recurring series can be expanded
  again as the window moves, without fetching it again (but for a plain single
  meeting, whose occurrence says all of it: schema 4).
- ``series`` hold the occurrences derived from ``objects`` per (collection, uid): a
  series' overrides may arrive in other objects (Google sends exceptions on their
  own), so expansion works on every component of that UID in the collection.
- ``contacts`` are derived from contact objects, one row per card.
- ``followups`` is the lifecycle of every task syncd decided to write; a row is
  inserted as ``pending`` before the remote write, so a crash in between is finished
  by the next pass instead of forgotten or duplicated.
- ``people`` is the last pass's inference (what ``syncd people`` shows).
- cursors live on their ``collections`` row and are written once every batch of
  changes they cover is committed (a crash in between lists again from the old
  cursor, and the stored etags make that a no-op).
- ``touched``, ``stale``, ``attend``, ``titled``, ``terms`` and ``bases`` let a pass
  derive again only the people a change touched (schema 3; ``syncd.derive``).
- ``meetings`` and ``met`` are each person's counted meetings (the ``interactions``
  view); schema 4 made the ledger smaller (``_SCHEMA_4``).
- ``people.due`` is each snapshot entry's due date, indexed (schema 5): the report
  after a pass counts the overdue without reading the snapshot.
- ``collections.objects`` counts each collection's objects; recurring series are
  indexed by how far they are expanded, follow-ups by state, person and the day
  written (schema 6): a pass with nothing to do reads no table whole, and a pass after
  a few edits reads the follow-ups of the people they touched, not all of them.

Connections use ``isolation_level=None`` and explicit ``BEGIN IMMEDIATE``, so every
transaction is visible in the code; the schema version is checked at open.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import errno
import functools
import hashlib
import heapq
import json
import math
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from syncd import paths
from syncd.errors import SyncdError, TempFailError
from syncd.identity import Identity
from syncd.model import ContactRecord, Milestone, Occurrence, PartialDate, Party

T = TypeVar("T")

SCHEMA_VERSION = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    last_success TEXT, last_error TEXT, last_error_at TEXT,
    next_attempt TEXT, failures INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT '{}',       -- the connector's own JSON state
    self_addresses TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    remote_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    cursor TEXT, synced_at TEXT,
    UNIQUE (account, kind, remote_id)
);
CREATE TABLE IF NOT EXISTS objects (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    href TEXT NOT NULL, etag TEXT NOT NULL, data TEXT NOT NULL,
    uids TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (collection, href)
);
CREATE TABLE IF NOT EXISTS object_uids (     -- which objects hold a UID, for re-expansion
    collection INTEGER NOT NULL, uid TEXT NOT NULL, href TEXT NOT NULL,
    PRIMARY KEY (collection, uid, href),
    FOREIGN KEY (collection, href) REFERENCES objects(collection, href) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS series (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    uid TEXT NOT NULL, recurring INTEGER NOT NULL, expanded_until TEXT NOT NULL,
    PRIMARY KEY (collection, uid)
);
CREATE TABLE IF NOT EXISTS occurrences (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    uid TEXT NOT NULL, recurrence_id TEXT NOT NULL,
    start TEXT NOT NULL,    -- UTC ISO: lets a pass tell whether time alone changed anything
    data TEXT NOT NULL,
    PRIMARY KEY (collection, uid, recurrence_id)
);
CREATE INDEX IF NOT EXISTS occurrences_start ON occurrences(start);
CREATE TABLE IF NOT EXISTS contacts (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    href TEXT NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (collection, href, idx)
);
CREATE TABLE IF NOT EXISTS followups (
    uid TEXT PRIMARY KEY,
    rule TEXT NOT NULL, key TEXT NOT NULL, person TEXT NOT NULL,
    name TEXT NOT NULL, emails TEXT NOT NULL, cycle TEXT NOT NULL,
    due TEXT NOT NULL, summary TEXT NOT NULL, reason TEXT NOT NULL,
    account TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending','open','done','dismissed','resolved')),
    written_on TEXT NOT NULL,     -- local date the rule decided it (daily_limit)
    closed_at TEXT,               -- when it left 'open' (done: COMPLETED, else when seen)
    UNIQUE (rule, person, cycle)
);
CREATE TABLE IF NOT EXISTS people (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, started TEXT NOT NULL,
    finished TEXT, summary TEXT
);
"""

# Schema 2: people have stable ids (``syncd.identity``). ``persons`` lists every id in
# creation order (the older absorbs the newer on a merge) and what it merged into;
# ``person_links`` remembers which person each record and address last belonged to;
# ``interactions`` are the counted meetings of each person (SPEC §8).
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS persons (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, merged_into TEXT
);
CREATE TABLE IF NOT EXISTS person_links (
    link TEXT PRIMARY KEY,            -- 'email:<address>' or 'record:<ref>'
    person TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS person_links_person ON person_links(person);
CREATE TABLE IF NOT EXISTS interactions (
    person TEXT NOT NULL, uid TEXT NOT NULL, recurrence_id TEXT NOT NULL,
    start TEXT NOT NULL, end TEXT, summary TEXT NOT NULL,
    account TEXT NOT NULL, calendar TEXT NOT NULL,
    others INTEGER NOT NULL, organised INTEGER NOT NULL,
    PRIMARY KEY (person, uid, recurrence_id)
);
CREATE INDEX IF NOT EXISTS interactions_person_start ON interactions(person, start);
-- the due date as the user moved it in their calendar (NULL: as syncd wrote it)
ALTER TABLE followups ADD COLUMN user_due TEXT;
CREATE TABLE IF NOT EXISTS stories (   -- per person: upcoming meetings, the words of `syncd person`
    key TEXT PRIMARY KEY, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS histories (  -- per person: a digest of their interaction rows
    person TEXT PRIMARY KEY, digest TEXT NOT NULL  -- (a pass rewrites only the rows that changed)
);
"""


# Schema 3: what lets a pass re-derive only the people a change touched (``syncd.derive``).
# ``touched`` lists the UIDs whose occurrences changed since the last derivation (the
# ingest writes it with the occurrences, in the same transaction); ``stale`` the people
# whose follow-ups the user changed. ``attend`` and ``titled`` index each UID by the
# addresses of its parties and, for meetings that count by title alone, the words of
# their summary: a person's meetings are found from their addresses and names.
# ``bases`` keeps what each person was derived from (their records), to tell which
# changed. ``attend``, ``titled`` and ``bases`` are the derivation's, rebuilt by it.
_SCHEMA_3 = """
CREATE TABLE IF NOT EXISTS touched (uid TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS stale (person TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS attend (
    address TEXT NOT NULL, uid TEXT NOT NULL, PRIMARY KEY (address, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attend_uid ON attend(uid);
CREATE TABLE IF NOT EXISTS titled (word TEXT NOT NULL, uid TEXT NOT NULL, PRIMARY KEY (word, uid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS titled_uid ON titled(uid);
CREATE TABLE IF NOT EXISTS bases (person TEXT PRIMARY KEY, data TEXT NOT NULL);
-- Interactions are kept in the order they are read (a person's, by start): one tree,
-- not a table and two indexes (half the ledger at 20,000 events). They are derived:
-- the derivation after this upgrade writes them again (its snapshot format changed).
DROP TABLE IF EXISTS interactions;
DROP TABLE IF EXISTS histories;
CREATE TABLE interactions (
    person TEXT NOT NULL, uid TEXT NOT NULL, recurrence_id TEXT NOT NULL,
    start TEXT NOT NULL, end TEXT, summary TEXT NOT NULL,
    account TEXT NOT NULL, calendar TEXT NOT NULL,
    others INTEGER NOT NULL, organised INTEGER NOT NULL,
    PRIMARY KEY (person, start, uid, recurrence_id)
) WITHOUT ROWID;
CREATE TABLE histories (person TEXT PRIMARY KEY, digest TEXT NOT NULL)
"""

#: the meta key of ``book_version``
_BOOK = "book"

# Schema 4: the same facts in less room (issue 8). What changed, and why:
# - a series' occurrences are one row: ``series.data`` holds them as JSON lines, packed
#   together (a weekly series repeats its attendees hundreds of times: deflate sees that
#   only in one text); ``starts`` (epoch seconds) answers "did a meeting start since".
# - ``objects`` and ``object_uids`` are kept in key order (WITHOUT ROWID: their keys
#   are not stored twice). An object whose only event is a plain single meeting keeps
#   no text (``data`` is ''): its one occurrence says all of it (``syncd.ingest``).
# - interactions name their meeting: ``meetings`` holds each meeting once (times as
#   epoch seconds), ``met`` who met at it, ``person_keys`` an integer for each person
#   id, ``calendars`` one for each (account, calendar). The view ``interactions``
#   shows the rows as schema 3 stored them.
# - ``touched`` is kept in key order too.
# - ``terms`` holds each UID's addresses and title words (what ``attend`` and
#   ``titled`` needed a second index for), and an integer that ``attend`` and
#   ``titled`` name the UID by.
# - ``meetings`` and ``terms`` have ids from a hash of what they hold: finding a row
#   needs no index on it (``Ledger._place``).
# The copy of the schema-3 rows into these is ``Ledger._to_v4``, after this block. A
# table new in schema 4 goes at the end of the block (``_run`` splits it on semicolons:
# none in comments); one added in a later schema, in a block of its own.
_SCHEMA_4 = """
DROP TABLE IF EXISTS object_uids;
ALTER TABLE objects RENAME TO objects_v3;
CREATE TABLE objects (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    href TEXT NOT NULL, etag TEXT NOT NULL,
    data TEXT NOT NULL,          -- the text, packed (empty: its occurrence says it all)
    uids TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (collection, href)
) WITHOUT ROWID;
INSERT INTO objects (collection, href, etag, data, uids) SELECT collection, href, etag, data, uids FROM objects_v3;
DROP TABLE objects_v3;
CREATE TABLE object_uids (     -- which objects hold a UID, for re-expansion
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    uid TEXT NOT NULL, href TEXT NOT NULL,
    PRIMARY KEY (collection, uid, href)
) WITHOUT ROWID;
ALTER TABLE series RENAME TO series_v3;
ALTER TABLE occurrences RENAME TO occurrences_v3;
DROP INDEX IF EXISTS occurrences_start;
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    uid TEXT NOT NULL, recurring INTEGER NOT NULL,
    expanded_until INTEGER NOT NULL,   -- epoch seconds
    data TEXT NOT NULL,                -- its occurrences, a JSON line each (``occurrence_json``), packed
    UNIQUE (collection, uid)
);
CREATE TABLE starts (                  -- a series' rows go with it (``Ledger._put_series``)
    start INTEGER NOT NULL,            -- epoch seconds
    series INTEGER NOT NULL,           -- series.id
    PRIMARY KEY (start, series)
) WITHOUT ROWID;
ALTER TABLE interactions RENAME TO interactions_v3;
CREATE TABLE person_keys (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE calendars (               -- the (account, calendar) a meeting was read from
    id INTEGER PRIMARY KEY, account TEXT NOT NULL, calendar TEXT NOT NULL, UNIQUE (account, calendar)
);
CREATE TABLE meetings (
    id INTEGER PRIMARY KEY,            -- from what the row holds (``_hash_id``)
    uid TEXT NOT NULL, recurrence_id TEXT NOT NULL,
    start INTEGER NOT NULL, end INTEGER,   -- epoch seconds
    summary TEXT NOT NULL,
    calendar INTEGER NOT NULL,         -- calendars.id
    refs INTEGER NOT NULL              -- rows of ``met`` naming it: at 0 it goes
);
CREATE TABLE met (
    person INTEGER NOT NULL,           -- person_keys.id
    meeting INTEGER NOT NULL,          -- meetings.id
    others INTEGER NOT NULL, organised INTEGER NOT NULL,
    PRIMARY KEY (person, meeting)
) WITHOUT ROWID;
CREATE VIEW interactions AS
SELECT k.key AS person, m.uid AS uid, m.recurrence_id AS recurrence_id,
       strftime('%Y-%m-%dT%H:%M:%SZ', m.start, 'unixepoch') AS start,
       strftime('%Y-%m-%dT%H:%M:%SZ', m.end, 'unixepoch') AS end,
       m.summary AS summary, c.account AS account, c.calendar AS calendar,
       i.others AS others, i.organised AS organised
FROM met i JOIN person_keys k ON k.id = i.person JOIN meetings m ON m.id = i.meeting
JOIN calendars c ON c.id = m.calendar;
DROP INDEX IF EXISTS attend_uid;
DROP INDEX IF EXISTS titled_uid;
ALTER TABLE attend RENAME TO attend_v3;
ALTER TABLE titled RENAME TO titled_v3;
CREATE TABLE terms (
    id INTEGER PRIMARY KEY,            -- from its UID (``_hash_id``)
    uid TEXT NOT NULL,
    addresses TEXT NOT NULL, words TEXT NOT NULL   -- JSON lists
);
CREATE TABLE attend (address TEXT NOT NULL, term INTEGER NOT NULL, PRIMARY KEY (address, term)) WITHOUT ROWID;
CREATE TABLE titled (word TEXT NOT NULL, term INTEGER NOT NULL, PRIMARY KEY (word, term)) WITHOUT ROWID;
ALTER TABLE touched RENAME TO touched_v3;
CREATE TABLE touched (uid TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO touched SELECT uid FROM touched_v3;
DROP TABLE touched_v3
"""

# Filled from the snapshot by ``Ledger._to_v5``.
_SCHEMA_5 = """
ALTER TABLE people ADD COLUMN due TEXT;    -- the entry's "due" (NULL: none)
CREATE INDEX people_due ON people(due)
"""

# A pass with no change asks how many objects each collection holds (``etag_count``),
# which series to expand further (``stale_series``) and which follow-ups are still
# open (``followups``): each was a scan of a whole table (the first two 28 ms at
# 200,000 events, 0.35 s from a cold disk; closed follow-ups pile up over the years).
# ``put_object`` and ``delete_object``, which know whether the object was stored,
# keep the count. A pass after a few edits reads the follow-ups of the people they
# touched, by person and by the day they were written (``followups_for``).
_SCHEMA_6 = """
ALTER TABLE collections ADD COLUMN objects INTEGER NOT NULL DEFAULT 0;
UPDATE collections SET objects = (SELECT count(*) FROM objects WHERE objects.collection = collections.id);
CREATE INDEX series_stale ON series(expanded_until) WHERE recurring = 1;
CREATE INDEX followups_state ON followups(state);
CREATE INDEX followups_person ON followups(person);
CREATE INDEX followups_written ON followups(written_on)
"""

#: passes the run log keeps (``log_run``)
RUNS_KEPT = 1000

#: SQLite's default limit of host parameters is 999 before 3.32: stay under it
_CHUNK = 500
#: interaction rows ``replace_people`` hands on at once: a whole ledger's would not
#: fit. Bigger hand-overs look up a meeting of several people fewer times, but hold
#: about 750 bytes a row meanwhile: 20,000 added 15 MB to a 20,000-event backfill's
#: peak (70 MB) for a store faster by no more than this machine's noise
_ROWS_AT_ONCE = 500


def _chunks(items: Iterable[T]) -> Iterator[list[T]]:
    # sliced, not appended one by one: a derivation from scratch chunks 100,000s of ids
    seq = items if isinstance(items, list) else list(items)
    for at in range(0, len(seq), _CHUNK):
        yield seq[at:at + _CHUNK]


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_full(exc: BaseException) -> bool:
    """True if ``exc`` says the ledger's disk (or quota, or file size limit) is full."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL
    if isinstance(exc, sqlite3.Error):
        # SQLITE_FULL; a write refused by RLIMIT_FSIZE (EFBIG) comes as SQLITE_IOERR_WRITE.
        code = getattr(exc, "sqlite_errorname", "")
        return code in ("SQLITE_FULL", "SQLITE_IOERR_WRITE") or "disk is full" in str(exc)
    return False


def full_disk_error(path: Path, exc: BaseException) -> TempFailError:
    """The message for a full disk: which ledger, that it is intact, what to do (exit 75)."""
    return TempFailError(
        f"cannot write the ledger {path}: its disk is full or refused the write ({exc}). "
        "The ledger is intact: the step that failed was rolled back. Free some space on that "
        "disk (or move the ledger to another one and point syncd.ledger at it), then run syncd again"
    )


def iso(value: dt.datetime | None) -> str | None:
    """UTC ISO-8601 with Z (the ledger's and the JSON's time format)."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(value: str | None) -> dt.datetime | None:
    """The inverse of ``iso``."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _epoch(value: dt.datetime) -> int:
    """Epoch seconds of ``value``, to the second as ``iso`` (how the ledger's indexed times are kept)."""
    return math.floor(value.timestamp())


def _from_epoch(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.timezone.utc)


def _iso_epoch(value: int | None) -> str | None:
    """``iso`` of epoch seconds."""
    return iso(_from_epoch(value))


@dataclass(frozen=True)
class AccountStatus:
    """What the ledger knows of an account's passes."""

    last_success: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    next_attempt: dt.datetime | None = None
    failures: int = 0


@dataclass(frozen=True)
class CollectionRow:
    """A collection as stored."""

    id: int
    account: str
    remote_id: str
    kind: str
    name: str
    cursor: str | None
    synced_at: dt.datetime | None


@dataclass(frozen=True)
class Interaction:
    """One counted meeting of one person (SPEC §8), as stored."""

    person: str
    uid: str
    recurrence_id: str
    start: dt.datetime
    end: dt.datetime | None
    summary: str
    account: str
    calendar: str
    others: int
    organised: bool


@dataclass(frozen=True)
class PersonRows:
    """What a derivation stores of one person (``Ledger.replace_people``): their
    ``people --json`` entry and their story (JSON texts), and their interactions."""

    key: str
    entry: str
    story: str
    interactions: Iterable[Interaction]


@dataclass
class FollowupRow:
    """One follow-up's lifecycle."""

    uid: str
    rule: str
    key: str
    person: str
    name: str
    emails: list[str]
    cycle: str
    due: dt.date
    summary: str
    reason: str
    account: str
    state: str
    written_on: dt.date
    closed_at: dt.datetime | None = None
    user_due: dt.date | None = None  # the due the user moved the task to, if they did


def _writes(method: Callable[..., T]) -> Callable[..., T]:
    """A write of the ledger: only inside ``Ledger.transaction()``. A write outside one
    would commit on its own, half a step, which a crash could then leave behind."""

    @functools.wraps(method)
    def guarded(self: Ledger, *args: Any, **kwargs: Any) -> T:
        if not self.in_transaction:
            raise RuntimeError(f"Ledger.{method.__name__} writes outside a transaction")
        return method(self, *args, **kwargs)

    return guarded


class Ledger:
    """The SQLite ledger. Open with ``Ledger.open``; use ``transaction()`` to write."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.in_transaction = False  # inside transaction(): writes are allowed

    @classmethod
    def open(cls, path: Path, readonly: bool = False) -> Ledger:
        """Open (or create) the ledger at ``path``; check its schema version.

        Raises:
            SyncdError: the file is not a syncd ledger, or of a newer version, or cannot
                be created there (the message names the path).
            TempFailError: the disk is full (``full_disk_error``).
        """
        path = Path(path).expanduser()
        try:
            conn = cls._connect(path, readonly)
        except OSError as exc:
            if disk_full(exc):
                raise full_disk_error(path, exc) from None
            raise SyncdError(f"cannot create the ledger {path}: {exc.strerror or exc}") from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            ledger = cls(conn, path)
            ledger._migrate(readonly)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if disk_full(exc):
                raise full_disk_error(path, exc) from None
            raise SyncdError(f"{path} is not a usable syncd ledger: {exc}") from None
        if not readonly:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(f"{path}{suffix}", 0o600)
        return ledger

    @staticmethod
    def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
        if readonly:
            if not path.exists():
                raise SyncdError(f"no ledger at {path} yet; run `syncd --backfill` first")
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        paths.private_dir(path.parent)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        return sqlite3.connect(path, isolation_level=None, timeout=30)

    @classmethod
    def memory(cls, path: Path) -> Ledger:
        """An empty ledger in memory (a dry run on a machine with no ledger yet)."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        ledger = cls(conn, path)
        ledger._migrate(False)
        return ledger

    def _migrate(self, readonly: bool) -> None:
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        version = 0
        if has_meta:
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise SyncdError(
                f"{self.path} was written by a newer syncd (schema {version}, this one knows {SCHEMA_VERSION})"
            )
        if readonly and version < SCHEMA_VERSION:
            raise SyncdError(f"{self.path} was written by an older syncd; run `syncd sync` once to upgrade it")
        if version == SCHEMA_VERSION or readonly:
            return
        with self.transaction():
            # executescript() would commit on its own; one statement at a time keeps
            # the whole migration in this transaction: a crash leaves the old version.
            if version < 1:
                self._run(_SCHEMA)
            if version < 2:
                self._run(_SCHEMA_2)
                if version == 1:
                    self._ids_from_v1()
            if version < 3:
                self._run(_SCHEMA_3)
            if version < 4:
                self._run(_SCHEMA_4)
                self._to_v4()
            if version < 5:
                self._run(_SCHEMA_5)
                self._to_v5()
            if version < 6:
                self._run(_SCHEMA_6)
            self.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def _run(self, script: str) -> None:
        for stmt in script.split(";"):
            if stmt.strip():
                self.conn.execute(stmt)

    def _ids_from_v1(self) -> None:
        """Schema 1 keyed people by their first address: those keys become their ids.

        Follow-ups name their person by that key, so every decided follow-up keeps its
        owner (and its UID), and the last snapshot says which addresses were whose.
        """
        ids: dict[str, None] = {}
        for (person,) in self.conn.execute("SELECT person FROM followups ORDER BY rowid"):
            ids.setdefault(person, None)
        links: dict[str, str] = {}
        for key, data in self.conn.execute("SELECT key, data FROM people ORDER BY key"):
            ids.setdefault(key, None)
            for email in json.loads(data).get("emails", []):
                links.setdefault(f"email:{email}", key)
        self.conn.executemany("INSERT INTO persons(id, seq) VALUES (?, ?)", [(p, i) for i, p in enumerate(ids)])
        self.conn.executemany("INSERT INTO person_links VALUES (?, ?)", links.items())

    def _to_v5(self) -> None:
        """Give every snapshot entry its due date."""
        rows = self.conn.execute("SELECT key, data FROM people").fetchall()
        self.conn.executemany("UPDATE people SET due=? WHERE key=?",
                              [(_due(unpack(data)), key) for key, data in rows])

    def _to_v4(self) -> None:
        """Copy what schema 3 stored into schema 4's tables (``_SCHEMA_4``), then drop the old ones."""
        rows = self.conn.execute("SELECT collection, href, uids FROM objects").fetchall()
        self.conn.executemany("INSERT OR IGNORE INTO object_uids VALUES (?, ?, ?)",
                              [(cid, uid, href) for cid, href, uids in rows for uid in json.loads(uids)])
        # A series at a time, in key order: a big ledger is never held whole.
        keys = self.conn.execute(
            "SELECT collection, uid FROM series_v3 UNION SELECT collection, uid FROM occurrences_v3 "
            "ORDER BY collection, uid").fetchall()
        for cid, uid in keys:
            head = self.conn.execute("SELECT recurring, expanded_until FROM series_v3 WHERE collection=? AND uid=?",
                                     (cid, uid)).fetchone()
            occs = self.conn.execute("SELECT start, data FROM occurrences_v3 WHERE collection=? AND uid=? "
                                     "ORDER BY recurrence_id", (cid, uid)).fetchall()
            prefix = _head(uid) + ","
            lines = "\n".join(text[len(prefix) - 1:] if text.startswith(prefix) else text
                               for text in (unpack(data) for _, data in occs))
            self._put_series(cid, uid, [_epoch(parse_iso(start)) for start, _ in occs],  # type: ignore[arg-type]
                             pack(lines) if self.packs else lines, bool(head and head[0]),
                             _epoch(parse_iso(head[1])) if head else 0)  # type: ignore[arg-type]
        self.conn.execute("DROP TABLE occurrences_v3")
        self.conn.execute("DROP TABLE series_v3")
        people: dict[str, list[_Met]] = {}
        for r in self.conn.execute("SELECT person, uid, recurrence_id, start, end, summary, account, calendar, "
                                   "others, organised FROM interactions_v3 ORDER BY person, start, uid"):
            people.setdefault(r[0], []).append(((r[1], r[2], _epoch(parse_iso(r[3])),  # type: ignore[arg-type]
                                                 _epoch(parse_iso(r[4])) if r[4] else None,  # type: ignore[arg-type]
                                                 r[5], r[6], r[7]), r[8], r[9]))
        self._put_interactions({k: _deduped(rows) for k, rows in people.items()})
        self.conn.execute("DROP TABLE interactions_v3")
        terms: dict[str, tuple[list[str], list[str]]] = {}
        for table, at in (("attend_v3", 0), ("titled_v3", 1)):
            for term, uid in self.conn.execute(f"SELECT * FROM {table} ORDER BY 2, 1"):
                terms.setdefault(uid, ([], []))[at].append(term)
            self.conn.execute(f"DROP TABLE {table}")
        self._put_terms(terms)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        self.in_transaction = True
        try:
            yield self.conn
        except BaseException:
            self.in_transaction = False
            self.conn.execute("ROLLBACK")
            raise
        self.in_transaction = False
        self.conn.execute("COMMIT")

    # -- meta ----------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A value of the meta table."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    @_writes
    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value (inside the caller's transaction)."""
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def kept(self, key: str) -> str | None:
        """A text a stage keeps between passes (``keep``), or None."""
        value = self.meta(key)
        return None if value is None else unpack(value)

    @_writes
    def keep(self, key: str, text: str) -> None:
        """Keep a (large) text between passes, packed (inside a transaction)."""
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, self._pack(text)))

    def book_version(self) -> str:
        """A token that changes with every change to the address book or to who is who
        (contacts and identity): what a derived directory of people is valid for."""
        return self.meta(_BOOK) or ""

    def _book_changed(self) -> None:
        self.set_meta(_BOOK, os.urandom(16).hex())

    # -- accounts ------------------------------------------------------------
    @_writes
    def ensure_account(self, name: str, kind: str) -> None:
        """Create the account row if missing (inside a transaction)."""
        self.conn.execute(
            "INSERT INTO accounts(name, type) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET type=excluded.type",
            (name, kind),
        )

    def account_names(self) -> list[str]:
        """Accounts the ledger has rows for."""
        return [r[0] for r in self.conn.execute("SELECT name FROM accounts ORDER BY name")]

    def account_status(self, account: str) -> AccountStatus:
        """Last success, last error, next attempt of ``account``."""
        row = self.conn.execute("SELECT * FROM accounts WHERE name=?", (account,)).fetchone()
        if row is None:
            return AccountStatus()
        return AccountStatus(
            last_success=parse_iso(row["last_success"]),
            last_error=row["last_error"],
            last_error_at=parse_iso(row["last_error_at"]),
            next_attempt=parse_iso(row["next_attempt"]),
            failures=row["failures"],
        )

    def record_result(self, account: str, kind: str, when: dt.datetime, error: str | None) -> None:
        """Record a pass's outcome; a success clears the last error (commits)."""
        with self.transaction():
            self.ensure_account(account, kind)
            if error is None:
                self.conn.execute(
                    "UPDATE accounts SET last_success=?, last_error=NULL, last_error_at=NULL WHERE name=?",
                    (iso(when), account),
                )
            else:
                self.conn.execute(
                    "UPDATE accounts SET last_error=?, last_error_at=? WHERE name=?",
                    (error, iso(when), account),
                )

    def set_schedule(self, account: str, next_attempt: dt.datetime | None, failures: int) -> None:
        """Store the daemon's next attempt and failure count (commits)."""
        with self.transaction():
            self.conn.execute(
                "UPDATE accounts SET next_attempt=?, failures=? WHERE name=?",
                (iso(next_attempt), failures, account),
            )

    def connector_state(self, account: str) -> dict[str, Any]:
        """The connector's stored JSON state."""
        row = self.conn.execute("SELECT state FROM accounts WHERE name=?", (account,)).fetchone()
        return json.loads(row[0]) if row else {}

    @_writes
    def set_connector_state(self, account: str, state: dict[str, Any]) -> None:
        """Store the connector's state (inside a transaction)."""
        self.conn.execute("UPDATE accounts SET state=? WHERE name=?", (json.dumps(state, sort_keys=True), account))

    def self_addresses(self) -> set[str]:
        """Every address an account said is the user's."""
        out: set[str] = set()
        for (value,) in self.conn.execute("SELECT self_addresses FROM accounts"):
            out.update(json.loads(value))
        return out

    @_writes
    def set_self_addresses(self, account: str, addresses: set[str]) -> None:
        """Store what an account says are the user's addresses (inside a transaction)."""
        self.conn.execute(
            "UPDATE accounts SET self_addresses=? WHERE name=?", (json.dumps(sorted(addresses)), account)
        )

    # -- collections ---------------------------------------------------------
    @_writes
    def collection(self, account: str, kind: str, remote_id: str, name: str) -> CollectionRow:
        """The row of a collection, created if missing (inside a transaction)."""
        self.conn.execute(
            "INSERT INTO collections(account, kind, remote_id, name) VALUES (?,?,?,?) "
            "ON CONFLICT(account, kind, remote_id) DO UPDATE SET name=excluded.name",
            (account, kind, remote_id, name),
        )
        row = self.conn.execute(
            "SELECT * FROM collections WHERE account=? AND kind=? AND remote_id=?", (account, kind, remote_id)
        ).fetchone()
        return _collection(row)

    def collections(self, account: str | None = None) -> list[CollectionRow]:
        """Stored collections, of one account or all."""
        if account is None:
            rows = self.conn.execute("SELECT * FROM collections ORDER BY id")
        else:
            rows = self.conn.execute("SELECT * FROM collections WHERE account=? ORDER BY id", (account,))
        return [_collection(r) for r in rows]

    def object_count(self, account: str) -> int:
        """How many objects the ledger holds for ``account``."""
        row = self.conn.execute("SELECT sum(objects) FROM collections WHERE account=?", (account,)).fetchone()
        return int(row[0] or 0)

    @_writes
    def drop_collection(self, collection_id: int) -> None:
        """Forget a collection no longer configured (inside a transaction)."""
        uids = self.conn.execute("SELECT uid FROM series WHERE collection=?", (collection_id,))
        self.conn.executemany("INSERT OR IGNORE INTO touched VALUES (?)", list(uids))
        self.conn.execute("DELETE FROM starts WHERE series IN (SELECT id FROM series WHERE collection=?)",
                          (collection_id,))
        self.conn.execute("DELETE FROM collections WHERE id=?", (collection_id,))
        self._book_changed()

    @_writes
    def set_cursor(self, collection_id: int, cursor: str | None, when: dt.datetime) -> None:
        """Store a collection's cursor (inside a transaction, after its last batch's)."""
        self.conn.execute(
            "UPDATE collections SET cursor=?, synced_at=? WHERE id=?", (cursor, iso(when), collection_id)
        )

    # -- objects -------------------------------------------------------------
    def etags(self, collection_id: int) -> dict[str, str]:
        """href -> etag of a collection's objects."""
        return dict(self.conn.execute("SELECT href, etag FROM objects WHERE collection=?", (collection_id,)).fetchall())

    def object_uids(self, collection_id: int, href: str) -> list[str] | None:
        """UIDs an object held; None when the collection holds no such object."""
        row = self.conn.execute(
            "SELECT uids FROM objects WHERE collection=? AND href=?", (collection_id, href)
        ).fetchone()
        return json.loads(row[0]) if row else None

    @_writes
    def put_object(self, collection_id: int, href: str, etag: str, data: str | bytes, uids: list[str],
                   old: list[str] | None) -> None:
        """Store an object (inside a transaction); ``data`` is its text, or that text
        already ``pack``ed for this ledger (``self.packs``) by a worker process, or ''
        (the ingest keeps no text for a plain single meeting: its occurrence says it all).
        ``old``: what ``object_uids`` answers for it (None: it is new)."""
        stored = pack(data) if isinstance(data, str) and data and self.packs else data
        self.conn.execute(
            "INSERT INTO objects(collection, href, etag, data, uids) VALUES (?,?,?,?,?) "
            "ON CONFLICT(collection, href) DO UPDATE SET etag=excluded.etag, data=excluded.data, uids=excluded.uids",
            (collection_id, href, etag, stored, json.dumps(uids)),
        )
        if old is None:
            self.conn.execute("UPDATE collections SET objects = objects + 1 WHERE id=?", (collection_id,))
        # By (collection, uid, href), the key: "WHERE collection=? AND href=?" would read
        # every row of the collection, for every object (a backfill grew quadratically).
        self.conn.executemany("DELETE FROM object_uids WHERE collection=? AND uid=? AND href=?",
                              [(collection_id, uid, href) for uid in old or ()])
        self.conn.executemany(
            "INSERT OR IGNORE INTO object_uids(collection, uid, href) VALUES (?,?,?)",
            [(collection_id, uid, href) for uid in uids],
        )

    @_writes
    def delete_object(self, collection_id: int, href: str) -> list[str]:
        """Forget an object and its contact rows (inside a transaction); returns the
        UIDs it held (none if it was not stored)."""
        old = self.object_uids(collection_id, href)
        if old is not None:
            self.conn.executemany("DELETE FROM object_uids WHERE collection=? AND uid=? AND href=?",
                                  [(collection_id, uid, href) for uid in old])
            self.conn.execute("DELETE FROM objects WHERE collection=? AND href=?", (collection_id, href))
            self.conn.execute("UPDATE collections SET objects = objects - 1 WHERE id=?", (collection_id,))
        if self.conn.execute("DELETE FROM contacts WHERE collection=? AND href=?", (collection_id, href)).rowcount:
            self._book_changed()
        return old or []

    def objects_with_uid(self, collection_id: int, uid: str) -> list[tuple[str, str]]:
        """(href, text) of every object of a collection holding ``uid``; the text is ''
        for an object stored without it (``put_object``)."""
        return [(href, unpack(data)) for href, data in self.conn.execute(
            # A sub-select, so the planner starts from the UID (a join may scan the collection).
            "SELECT href, data FROM objects WHERE collection=? AND href IN "
            "(SELECT href FROM object_uids WHERE collection=? AND uid=?) ORDER BY href",
            (collection_id, collection_id, uid),
        )]

    def hrefs_with_uid(self, collection_id: int, uid: str) -> list[str]:
        """The href of every object of a collection holding ``uid``, in order."""
        return [r[0] for r in self.conn.execute(
            "SELECT href FROM object_uids WHERE collection=? AND uid=? ORDER BY href", (collection_id, uid))]

    @_writes
    def set_object_text(self, collection_id: int, href: str, data: str) -> None:
        """Give a stored object its text (kept without one until now), etag unchanged."""
        self.conn.execute("UPDATE objects SET data=? WHERE collection=? AND href=?",
                          (pack(data) if data and self.packs else data, collection_id, href))

    @property
    def packs(self) -> bool:
        """Whether this ledger stores texts ``pack``ed (SQLite keeps BLOBs in any column;
        PostgreSQL's ``text`` columns take text only, and TOAST compresses them there)."""
        return isinstance(self.conn, sqlite3.Connection)

    # -- derived: occurrences and contacts -------------------------------------
    @_writes
    def replace_series(self, collection_id: int, uid: str, starts: list[int], data: str | bytes, recurring: bool,
                       until: dt.datetime) -> None:
        """Replace the occurrences of one series (inside a transaction).

        ``data`` is ``series_data``'s (packed for this ledger, ``self.packs``), ``starts``
        the epoch seconds its occurrences start at.
        """
        self._put_series(collection_id, uid, starts, data, recurring, _epoch(until))
        self.conn.execute("INSERT OR IGNORE INTO touched VALUES (?)", (uid,))

    def _put_series(self, collection_id: int, uid: str, starts: list[int], data: str | bytes, recurring: bool,
                    until: int) -> None:
        self._drop_starts(collection_id, uid)
        # a single meeting is never expanded again: 0 takes no room in a row
        self.conn.execute(
            "INSERT INTO series (collection, uid, recurring, expanded_until, data) VALUES (?,?,?,?,?) "
            "ON CONFLICT (collection, uid) DO UPDATE SET recurring=excluded.recurring, "
            "expanded_until=excluded.expanded_until, data=excluded.data",
            (collection_id, uid, int(recurring), until if recurring else 0, data))
        self.conn.executemany("INSERT INTO starts (start, series) SELECT ?, id FROM series WHERE collection=? AND uid=?",
                              [(t, collection_id, uid) for t in sorted(set(starts))])

    def _drop_starts(self, collection_id: int, uid: str) -> None:
        """Delete the ``starts`` rows of a stored series, by key: read from its occurrences."""
        row = self.conn.execute("SELECT id, data FROM series WHERE collection=? AND uid=?", (collection_id, uid)).fetchone()
        if row is not None:
            self.conn.executemany("DELETE FROM starts WHERE start=? AND series=?",
                                  [(t, row[0]) for t in {_line_start(line) for line in _lines(uid, row[1])}])

    @_writes
    def drop_series(self, collection_id: int, uid: str) -> None:
        """Forget a series whose objects are gone (inside a transaction)."""
        self.conn.execute("INSERT OR IGNORE INTO touched VALUES (?)", (uid,))
        self._drop_starts(collection_id, uid)
        self.conn.execute("DELETE FROM series WHERE collection=? AND uid=?", (collection_id, uid))

    def series_lines(self, collection_id: int, uid: str) -> list[str] | None:
        """The stored occurrences (JSON) of one series; None if it is not stored."""
        row = self.conn.execute("SELECT data FROM series WHERE collection=? AND uid=?", (collection_id, uid)).fetchone()
        return None if row is None else _lines(uid, row[0])

    def stale_series(self, until: dt.datetime) -> list[tuple[int, str]]:
        """Recurring series expanded to before ``until``."""
        return self.conn.execute(
            "SELECT collection, uid FROM series WHERE recurring=1 AND expanded_until < ?", (_epoch(until),)
        ).fetchall()

    def starts_between(self, ranges: list[tuple[dt.datetime, dt.datetime]]) -> bool:
        """Whether any occurrence starts in one of the half-open ranges (a, b]."""
        for a, b in ranges:
            if a < b and self.conn.execute(
                "SELECT 1 FROM starts WHERE start > ? AND start <= ? LIMIT 1", (_epoch(a), _epoch(b))
            ).fetchone():
                return True
        return False

    def occurrences_of(self, uids: Iterable[str]) -> Iterator[tuple[int, str]]:
        """(collection id, JSON) of every stored occurrence of ``uids``, in any calendar."""
        for batch in _chunks(sorted(set(uids))):
            for cid, uid, data in self.conn.execute(
                    # by (collection, uid), the key: every collection of the ledger is a few
                    "SELECT collection, uid, data FROM series WHERE collection IN (SELECT id FROM collections) "
                    f"AND uid IN ({','.join('?' * len(batch))})", batch):
                for line in _lines(uid, data):
                    yield cid, line

    def uids_starting(self, ranges: list[tuple[dt.datetime, dt.datetime]]) -> set[str]:
        """UIDs with an occurrence starting in one of the half-open ranges (a, b]."""
        out: set[str] = set()
        for a, b in ranges:
            if a < b:
                out.update(r[0] for r in self.conn.execute(
                    "SELECT DISTINCT s.uid FROM starts t JOIN series s ON s.id = t.series "
                    "WHERE t.start > ? AND t.start <= ?", (_epoch(a), _epoch(b))))
        return out

    def occurrences_by_uid(self, collections: Iterable[int]) -> Iterator[tuple[str, int, str]]:
        """(uid, collection id, JSON) of every stored occurrence of ``collections``, by
        uid: one read of each collection's rows in key order, merged, so a caller can
        work through the ledger one UID at a time without holding it all."""
        def rows(cid: int) -> Iterator[tuple[str, int, str]]:
            for uid, data in self.conn.execute(
                    "SELECT uid, data FROM series WHERE collection=? ORDER BY uid", (cid,)):
                for line in _lines(uid, data):
                    yield uid, cid, line

        return heapq.merge(*(rows(c) for c in sorted(set(collections))), key=lambda r: r[0])

    def all_occurrences(self) -> Iterator[tuple[int, str]]:
        """(collection id, JSON) of every stored occurrence (for ``occurrence_from``)."""
        for cid, uid, data in self.conn.execute("SELECT collection, uid, data FROM series"):
            for line in _lines(uid, data):
                yield cid, line

    @_writes
    def put_contacts(self, collection_id: int, href: str, records: list[str]) -> None:
        """Replace the contact rows of one object (inside a transaction)."""
        self._book_changed()
        self.conn.execute("DELETE FROM contacts WHERE collection=? AND href=?", (collection_id, href))
        self.conn.executemany(
            "INSERT INTO contacts(collection, href, idx, data) VALUES (?,?,?,?)",
            [(collection_id, href, i, self._pack(data)) for i, data in enumerate(records)],
        )

    def all_contacts(self) -> Iterator[tuple[int, str, int, str]]:
        """(collection id, href, index, JSON) of every stored contact."""
        for cid, href, idx, data in self.conn.execute("SELECT collection, href, idx, data FROM contacts"):
            yield cid, href, idx, unpack(data)

    # -- what changed since the last derivation (``syncd.derive``) ---------------
    def touched(self, at_most: int | None = None) -> set[str] | None:
        """UIDs whose occurrences changed since the last derivation; None when there
        are more than ``at_most`` (after a backfill, every UID is: not worth holding)."""
        if at_most is None:
            return {r[0] for r in self.conn.execute("SELECT uid FROM touched")}
        found = {r[0] for r in self.conn.execute("SELECT uid FROM touched LIMIT ?", (at_most + 1,))}
        return None if len(found) > at_most else found

    def stale(self) -> set[str]:
        """Person ids whose follow-ups the user changed since the last derivation."""
        return {r[0] for r in self.conn.execute("SELECT person FROM stale")}

    @_writes
    def mark_stale(self, people: Iterable[str]) -> None:
        """Note that these people's follow-ups changed (inside a transaction)."""
        self.conn.executemany("INSERT OR IGNORE INTO stale VALUES (?)", [(p,) for p in set(people)])

    def index_of(self, uids: Iterable[str]) -> tuple[set[str], set[str]]:
        """The addresses and title words indexed for ``uids``."""
        addresses: set[str] = set()
        found: set[str] = set()
        for _, a, w in self._terms(uids):
            addresses.update(a)
            found.update(w)
        return addresses, found

    def _terms(self, uids: Iterable[str]) -> Iterator[tuple[int, list[str], list[str]]]:
        """(id, addresses, title words) of the ``terms`` rows of ``uids``."""
        for batch in _chunks(sorted(set(uids))):
            ids, stored = self._place({u: _hash_id(u) for u in batch}, self._term_slots)
            for i, a, w in self._rows_by_id("SELECT id, addresses, words FROM terms", [ids[u] for u in stored]):
                yield i, json.loads(a), json.loads(w)

    def _term_slots(self, ids: list[int]) -> dict[int, Any]:
        return {i: uid for i, uid in self._rows_by_id("SELECT id, uid FROM terms", ids)}

    def _rows_by_id(self, select: str, ids: list[int]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``select`` (``SELECT ... FROM table``) whose id is one of ``ids``."""
        for batch in _chunks(sorted(set(ids))):
            yield from self.conn.execute(f"{select} WHERE id IN ({','.join('?' * len(batch))})", batch)

    def _place(self, wanted: Mapping[Any, int], slots: Callable[[list[int]], dict[int, Any]]
               ) -> tuple[dict[Any, int], set[Any]]:
        """The id of each key of ``wanted`` (key -> its hash, ``_hash_id``) in a table
        whose ids are such hashes; ``slots(ids)`` reads which key each stored id holds.

        A key is stored at one of the ``_WINDOW`` ids from its hash: the first free
        one when it was placed (keys of one hash, never seen, take the next). Finding
        it reads them all, so a row deleted before it leaves no gap that would hide it.
        Returns the ids (stored keys keep theirs) and which keys are stored.
        """
        occupied: dict[int, Any] = {}
        for batch in _chunks(list(wanted.items())):
            occupied.update(slots(sorted({i for _, h in batch for i in _window(h)})))
        where = {key: i for i, key in occupied.items()}
        ids = {key: where[key] for key in wanted if key in where}
        stored = set(ids)
        for key, h in wanted.items():
            if key in ids:
                continue
            free = next((i for i in _window(h) if i not in occupied), None)
            if free is None:
                raise SyncdError(f"{self.path}: {_WINDOW} rows share one hash (this cannot happen)")
            ids[key] = free
            occupied[free] = key
        return ids, stored

    def uids_of(self, addresses: Iterable[str], title_words: Iterable[str]) -> set[str]:
        """UIDs indexed under any of ``addresses`` or ``title_words``."""
        out: set[str] = set()
        for table, column, keys in (("attend", "address", addresses), ("titled", "word", title_words)):
            for batch in _chunks(sorted(set(keys))):
                out.update(r[0] for r in self.conn.execute(
                    f"SELECT t.uid FROM {table} x JOIN terms t ON t.id = x.term "
                    f"WHERE x.{column} IN ({','.join('?' * len(batch))})", batch))
        return out

    def bases(self) -> dict[str, str]:
        """person id -> what they were derived from, as stored by the last derivation."""
        return self._texts("bases", "person", "data", None)

    @_writes
    def put_derivation(self, index: Mapping[str, tuple[Iterable[str], Iterable[str]]], bases: dict[str, str],
                       dropped: Iterable[str], uids: Iterable[str] | None, stale: Iterable[str],
                       old: Mapping[str, str] | None = None) -> None:
        """Store the derivation's own state (inside the transaction that stores people):
        the index of ``index``'s UIDs, each person's basis, and that the changes it
        consumed (``uids``, None: every one; ``stale``) are derived. ``old``: the bases
        as stored (``bases``), when the caller has read them."""
        # first: the pages they free take the index's new rows (after a backfill, 20,000
        # UIDs would leave a megabyte of free pages in the file)
        if uids is None:
            self.conn.execute("DELETE FROM touched")
        else:
            self.conn.executemany("DELETE FROM touched WHERE uid=?", [(u,) for u in uids])
        self.conn.executemany("DELETE FROM stale WHERE person=?", [(p,) for p in stale])
        self.put_index(index)
        old = self.bases() if old is None else old
        self.conn.executemany("DELETE FROM bases WHERE person=?", [(p,) for p in dropped if p in old])
        self.conn.executemany("INSERT OR REPLACE INTO bases VALUES (?, ?)",
                              [(k, self._pack(v)) for k, v in bases.items() if old.get(k) != v])

    @_writes
    def put_index(self, index: Mapping[str, tuple[Iterable[str], Iterable[str]]], clear: bool = False) -> None:
        """Index ``index``'s UIDs by their addresses and title words anew (inside a
        transaction); ``clear`` first forgets the whole index (it is being rebuilt)."""
        if clear:
            for table in ("attend", "titled", "terms"):
                self.conn.execute(f"DELETE FROM {table}")
        # What was indexed for these UIDs, found by id in ``terms``, goes by its key. A
        # rebuild's UIDs are looked up too (placing 20,000 of them costs about 0.2 s):
        # remembering the ids it wrote would take 40 MB at 200,000 events.
        before = list(self._terms(index))
        self.conn.executemany("DELETE FROM attend WHERE address=? AND term=?",
                              [(a, i) for i, addrs, _ in before for a in addrs])
        self.conn.executemany("DELETE FROM titled WHERE word=? AND term=?",
                              [(w, i) for i, _, words in before for w in words])
        self.conn.executemany("DELETE FROM terms WHERE id=?", [(i,) for i, _, _ in before])
        self._put_terms(index)

    def _put_terms(self, index: Mapping[str, tuple[Iterable[str], Iterable[str]]]) -> None:
        """Index ``index``'s UIDs (none of them indexed now), a few at a time: a
        rebuild's index is every UID of the ledger."""
        for batch in _chunks(index.items()):
            terms = [(uid, sorted(set(a)), sorted(set(w))) for uid, (a, w) in batch]
            terms = [t for t in terms if t[1] or t[2]]
            ids, _ = self._place({uid: _hash_id(uid) for uid, _, _ in terms}, self._term_slots)
            self.conn.executemany("INSERT INTO terms VALUES (?, ?, ?, ?)",
                                  [(ids[uid], uid, json.dumps(a), json.dumps(w)) for uid, a, w in terms])
            self.conn.executemany("INSERT INTO attend VALUES (?, ?)",
                                  [(x, ids[uid]) for uid, a, _ in terms for x in a])
            self.conn.executemany("INSERT INTO titled VALUES (?, ?)",
                                  [(x, ids[uid]) for uid, _, w in terms for x in w])

    # -- follow-ups ----------------------------------------------------------
    def followups(self, states: tuple[str, ...] | None = None) -> list[FollowupRow]:
        """Follow-ups, optionally only in ``states``."""
        sql = "SELECT * FROM followups"
        args: tuple[str, ...] = ()
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = states
        return [_followup(r) for r in self.conn.execute(sql + " ORDER BY due, name, uid", args)]

    @_writes
    def put_followup(self, row: FollowupRow) -> None:
        """Insert or replace a follow-up (inside a transaction)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO followups (uid, rule, key, person, name, emails, cycle, due, summary, "
            "reason, account, state, written_on, closed_at, user_due) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                row.uid, row.rule, row.key, row.person, row.name, json.dumps(row.emails), row.cycle,
                row.due.isoformat(), row.summary, row.reason, row.account, row.state,
                row.written_on.isoformat(), iso(row.closed_at), row.user_due.isoformat() if row.user_due else None,
            ),
        )

    @_writes
    def set_followup_user_due(self, uid: str, due: dt.date | None) -> None:
        """Remember the due date the user moved a follow-up to (inside a transaction)."""
        self.conn.execute("UPDATE followups SET user_due=? WHERE uid=?", (due.isoformat() if due else None, uid))

    @_writes
    def set_followup_state(self, uid: str, state: str, closed_at: dt.datetime | None = None) -> None:
        """Move a follow-up to ``state`` (inside a transaction)."""
        self.conn.execute("UPDATE followups SET state=?, closed_at=? WHERE uid=?", (state, iso(closed_at), uid))

    # -- identity --------------------------------------------------------------
    def identity(self) -> Identity:
        """Who was who (``syncd.identity``)."""
        ids, merged = [], {}
        for pid, into in self.conn.execute("SELECT id, merged_into FROM persons ORDER BY seq"):
            ids.append(pid)
            if into is not None:
                merged[pid] = into
        links = dict(self.conn.execute("SELECT link, person FROM person_links").fetchall())
        return Identity(links, merged, ids)

    def aliases(self, person: str) -> frozenset[str]:
        """``person`` and every id merged into it (transitively), without loading every link."""
        rows = self.conn.execute(
            "WITH RECURSIVE a(id) AS (SELECT id FROM persons WHERE id = ? "
            "UNION SELECT p.id FROM persons p JOIN a ON p.merged_into = a.id) "
            "SELECT id FROM a", (person,))
        return frozenset(r[0] for r in rows) | {person}

    @_writes
    def put_identity(self, new: Identity, old: Identity) -> None:
        """Store what changed from ``old`` to ``new`` (inside a transaction)."""
        known = set(old.ids)
        born = [(p,) for p in new.ids if p not in known]
        moved = [(new.merged.get(p), p) for p in set(new.merged) | set(old.merged)
                 if new.merged.get(p) != old.merged.get(p)]
        links = [(k, v) for k, v in new.links.items() if old.links.get(k) != v]
        self.conn.executemany(
            "INSERT INTO persons(id, seq) VALUES (?, (SELECT coalesce(max(seq), -1) + 1 FROM persons))", born)
        self.conn.executemany("UPDATE persons SET merged_into=? WHERE id=?", moved)
        self.conn.executemany("INSERT OR REPLACE INTO person_links VALUES (?, ?)", links)
        if born or moved or links:
            self._book_changed()

    # -- people snapshot and runs --------------------------------------------
    @_writes
    def replace_people(self, people: Iterable[PersonRows], dropped: Iterable[str] | None = None,
                       spliced: tuple[set[str], set[str]] = (set(), set())) -> None:
        """Store what an inference derived (inside a transaction): each person's
        snapshot entry, story (upcoming meetings and explanations) and counted
        interactions.

        ``people`` is read once, a person at a time, and each one's interactions before
        the next person is asked for: a derivation from scratch reads everyone's meetings
        back one person at a time (``derive.Derivation.each``).

        ``dropped``: the people who are gone, when ``people`` holds only those derived
        again (an incremental derivation); None: ``people`` is everyone, the others go.
        Only what changed is written: a pass that touched a few people rewrites their
        rows, not the whole history. Stories and interactions live apart from the
        snapshot, so ``syncd people`` reads neither and ``syncd person`` reads one
        person's rows.

        ``spliced``: people and UIDs; of these people's interactions only the rows of
        these UIDs changed, and ``interactions`` holds those alone (a pass after a few
        changed meetings costs them, not the people's whole histories).
        """
        partial, uids = spliced
        seen: set[str] = set()
        added: dict[str, list[_Met]] = {}
        changed: dict[str, list[_Met]] = {}
        held = 0
        for p in people:
            seen.add(p.key)
            if self._texts("people", "key", "data", [p.key]).get(p.key) != p.entry:
                self.conn.execute("INSERT OR REPLACE INTO people(key, data, due) VALUES (?, ?, ?)",
                                  (p.key, self._pack(p.entry), _due(p.entry)))
            if self._texts("stories", "key", "data", [p.key]).get(p.key) != p.story:
                self.conn.execute("INSERT OR REPLACE INTO stories VALUES (?, ?)", (p.key, self._pack(p.story)))
            rows = _deduped([_met(i) for i in p.interactions])
            if p.key in partial:
                added[p.key] = rows
                continue
            # (digests of another form, schema 3's or before sums: the first derivation
            # that meets them writes the history once more)
            digest = _digest(rows)
            if self._texts("histories", "person", "digest", [p.key]).get(p.key) == digest:
                continue
            changed[p.key] = rows
            held += len(rows) + 1
            self.conn.execute("INSERT OR REPLACE INTO histories VALUES (?, ?)", (p.key, digest))
            if held >= _ROWS_AT_ONCE:  # some people at a time: a whole ledger's rows would not fit
                self._put_interactions(changed)
                changed, held = {}, 0
        self._put_interactions(changed)
        removed = self._put_interactions(added, uids)
        # A digest is a sum over rows: the rows that went are taken out of it, those that
        # came are added (a digest of another form goes: the next derivation of their
        # whole history writes it).
        kept = self._texts("histories", "person", "digest", partial)
        self.conn.executemany("INSERT OR REPLACE INTO histories VALUES (?, ?)", [
            (k, _digest(rows, _digest_sum(kept[k]) - _row_sum(removed.get(k, ()))))
            for k, rows in added.items() if k in kept and kept[k].startswith(_DIGEST)])
        self.conn.executemany("DELETE FROM histories WHERE person=?",
                              [(k,) for k in partial if k in kept and not kept[k].startswith(_DIGEST)])
        if dropped is None:
            gone = [k for (k,) in self.conn.execute("SELECT key FROM people") if k not in seen]
        else:
            gone = [k for k in dropped if k not in seen]
        for table, column in (("people", "key"), ("stories", "key"), ("histories", "person")):
            self.conn.executemany(f"DELETE FROM {table} WHERE {column}=?", [(k,) for k in gone])
        self._put_interactions({k: [] for k in gone})

    def _put_interactions(self, people: Mapping[str, list[_Met]], uids: set[str] | None = None
                          ) -> dict[str, list[_Met]]:
        """Replace the interaction rows of ``people`` (no rows: the person goes), each
        a meeting (``_Met``), how many others and whether the user organised it, as
        stored (``_deduped``: what their digests are made of).
        ``uids``: replace only their rows of meetings of these UIDs (their others stay);
        returns the rows that went (with ``uids`` only).

        A meeting is stored once, however many people met at it: ``met`` names it by
        id, and ``meetings.refs`` counts those rows, so a meeting goes with its last one.
        """
        removed: dict[str, list[_Met]] = {}
        if not people:
            return removed
        keys = self._person_keys(people, create=True)
        names = {v: k for k, v in keys.items()}
        delta: collections.Counter[int] = collections.Counter()
        old: list[tuple[int, int]] = []
        for batch in _chunks(sorted(people)):
            persons = [keys[k] for k in batch]
            marks = ",".join("?" * len(persons))
            if uids is None:
                old += self.conn.execute(f"SELECT person, meeting FROM met WHERE person IN ({marks})",
                                         persons).fetchall()
                continue
            for some in _chunks(sorted(uids)):
                for r in self.conn.execute(
                        "SELECT i.person, i.meeting, m.uid, m.recurrence_id, m.start, m.end, m.summary, c.account, "
                        "c.calendar, i.others, i.organised FROM met i JOIN meetings m ON m.id = i.meeting "
                        "JOIN calendars c ON c.id = m.calendar "
                        f"WHERE i.person IN ({marks}) AND m.uid IN ({','.join('?' * len(some))})",
                        [*persons, *some]):
                    old.append((r[0], r[1]))
                    removed.setdefault(names[r[0]], []).append((tuple(r[2:9]), r[9], r[10]))
        for _, meeting in old:
            delta[meeting] -= 1
        if uids is None:
            self.conn.executemany("DELETE FROM met WHERE person=?", [(keys[k],) for k in people])
        else:
            self.conn.executemany("DELETE FROM met WHERE person=? AND meeting=?", old)
        ids, _ = self._place({row: _hash_id(row) for rows in people.values() for row, _, _ in rows}, self._meetings)
        met = []
        for person, rows in people.items():
            for row, others, organised in rows:
                met.append((keys[person], ids[row], others, organised))
                delta[ids[row]] += 1
        self.conn.executemany("INSERT OR IGNORE INTO met VALUES (?, ?, ?, ?)", met)
        refs = dict(self._rows_by_id("SELECT id, refs FROM meetings", list(delta)))
        new = [(mid, row) for row, mid in ids.items() if mid not in refs and delta[mid] > 0]
        calendars = self._calendars({row[5:] for _, row in new})
        self.conn.executemany("INSERT INTO meetings VALUES (?,?,?,?,?,?,?,?)",
                              [(mid, *row[:5], calendars[row[5:]], delta[mid]) for mid, row in new])
        self.conn.executemany("UPDATE meetings SET refs=? WHERE id=?",
                              [(refs[m] + d, m) for m, d in delta.items() if m in refs and d and refs[m] + d > 0])
        self.conn.executemany("DELETE FROM meetings WHERE id=?",
                              [(m,) for m, d in delta.items() if m in refs and refs[m] + d <= 0])
        self.conn.executemany("DELETE FROM person_keys WHERE id=?", [(keys[k],) for k, rows in people.items()
                                                                     if not rows and uids is None])
        return removed

    def _person_keys(self, people: Iterable[str], create: bool = False) -> dict[str, int]:
        """person id -> its ``person_keys`` integer (made for those without one if ``create``)."""
        people = sorted(set(people))
        out: dict[str, int] = {}
        for batch in _chunks(people):
            out.update(self.conn.execute(
                f"SELECT key, id FROM person_keys WHERE key IN ({','.join('?' * len(batch))})", batch).fetchall())
        new = [k for k in people if k not in out]
        if create and new:
            top = int(self.conn.execute("SELECT coalesce(max(id), 0) FROM person_keys").fetchone()[0])
            out.update((k, top + n) for n, k in enumerate(new, 1))
            self.conn.executemany("INSERT INTO person_keys VALUES (?, ?)", [(out[k], k) for k in new])
        return out

    def _meetings(self, ids: list[int]) -> dict[int, tuple[Any, ...]]:
        """id -> what the stored meeting holds (as ``_Met``'s), for those of ``ids`` stored."""
        out: dict[int, tuple[Any, ...]] = {}
        # which are stored first, by the key alone: most of a window's ids are free
        for batch in _chunks(sorted(r[0] for r in self._rows_by_id("SELECT id FROM meetings", ids))):
            for r in self.conn.execute(
                    "SELECT m.id, m.uid, m.recurrence_id, m.start, m.end, m.summary, c.account, c.calendar "
                    "FROM meetings m JOIN calendars c ON c.id = m.calendar "
                    f"WHERE m.id IN ({','.join('?' * len(batch))})", batch):
                out[r[0]] = tuple(r[1:])
        return out

    def _calendars(self, names: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(account, calendar) -> its ``calendars`` id, made if missing (a few: read them all)."""
        out = {(a, c): i for i, a, c in self.conn.execute("SELECT id, account, calendar FROM calendars")}
        new = sorted(names - set(out))
        top = max(out.values(), default=0)
        out.update((name, top + n) for n, name in enumerate(new, 1))
        self.conn.executemany("INSERT INTO calendars VALUES (?, ?, ?)", [(out[n], *n) for n in new])
        return out


    def meetings_of(self, people: Iterable[str], shared: dict[Any, Any] | None = None
                    ) -> dict[str, list[tuple[Any, ...]]]:
        """person -> their stored interaction rows (person, uid, recurrence_id, start, end,
        summary, account, calendar, others, organised), by start (times as UTC datetimes).
        ``shared``: one object per equal text and per time (by epoch), across calls. A
        meeting of five people is five rows; on a new day everyone's rows are read, and
        each text and time would otherwise be held five times."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        keys = self._person_keys(people)
        names = {v: k for k, v in keys.items()}
        seen = shared if shared is not None else {}
        text = seen.setdefault

        def when(epoch: int | None) -> dt.datetime | None:
            if epoch is None:
                return None
            found = seen.get(epoch)
            if found is None:
                found = seen[epoch] = _from_epoch(epoch)
            return found  # type: ignore[no-any-return]

        for batch in _chunks(sorted(names)):
            for r in self.conn.execute(
                    "SELECT i.person, m.uid, m.recurrence_id, m.start, m.end, m.summary, c.account, c.calendar, "
                    "i.others, i.organised FROM met i JOIN meetings m ON m.id = i.meeting "
                    "JOIN calendars c ON c.id = m.calendar "
                    f"WHERE i.person IN ({','.join('?' * len(batch))}) ORDER BY i.person, m.start, m.uid", batch):
                key = names[r[0]]
                out.setdefault(key, []).append((key, text(r[1], r[1]), text(r[2], r[2]), when(r[3]), when(r[4]),
                                                text(r[5], r[5]), text(r[6], r[6]), text(r[7], r[7]), r[8], r[9]))
        return out

    def stories_of(self, people: Iterable[str]) -> dict[str, dict[str, Any]]:
        """person -> their stored story."""
        return {k: json.loads(v) for k, v in self._texts("stories", "key", "data", people).items()}

    def _pack(self, text: str) -> str | bytes:
        """A JSON text as this ledger stores it: packed in SQLite (``pack``)."""
        return pack(text) if self.packs else text

    def entries_of(self, people: Iterable[str]) -> dict[str, dict[str, Any]]:
        """person -> their stored ``people --json`` entry."""
        return {k: json.loads(v) for k, v in self._texts("people", "key", "data", people).items()}

    def _texts(self, table: str, key: str, value: str, keys: Iterable[str] | None) -> dict[str, str]:
        """``key -> value`` (unpacked) of a table, for ``keys`` (None: every row)."""
        if keys is None:
            return {k: unpack(v) for k, v in self.conn.execute(f"SELECT {key}, {value} FROM {table}")}
        out: dict[str, str] = {}
        for batch in _chunks(keys):
            out.update((k, unpack(v)) for k, v in self.conn.execute(
                f"SELECT {key}, {value} FROM {table} WHERE {key} IN ({','.join('?' * len(batch))})", batch))
        return out

    def history(self, person: str) -> list[dict[str, Any]]:
        """One person's counted interactions, newest first, as ``person --json`` shows
        them (times as stored: UTC ISO with Z)."""
        rows = self.conn.execute(
            "SELECT m.start, m.end, m.summary, c.account, c.calendar, i.others, i.organised "
            "FROM met i JOIN meetings m ON m.id = i.meeting JOIN calendars c ON c.id = m.calendar "
            "WHERE i.person = (SELECT id FROM person_keys WHERE key=?) ORDER BY m.start DESC, m.uid DESC", (person,))
        return [{"start": _iso_epoch(r[0]), "end": _iso_epoch(r[1]), "summary": r[2], "account": r[3],
                 "calendar": r[4], "others": r[5], "organised": bool(r[6])} for r in rows]

    def followups_for(self, ids: Iterable[str], written_since: dt.date) -> list[FollowupRow]:
        """What a plan of a few people reads of the follow-ups (``rules.plan``): those
        decided for any of ``ids``, every pending or open one, and every one written on
        ``written_since`` or later (for many ids, all of them); in the order of
        ``followups``."""
        ids = sorted(set(ids))
        if len(ids) > _CHUNK:
            return self.followups()
        # A union, not an OR: SQLite then looks each part up by its index.
        sql = ("SELECT * FROM followups WHERE state IN ('pending', 'open') "
               "UNION SELECT * FROM followups WHERE written_on >= ? "
               + (f"UNION SELECT * FROM followups WHERE person IN ({','.join('?' * len(ids))}) " if ids else "")
               + "ORDER BY due, name, uid")
        return [_followup(r) for r in self.conn.execute(sql, (written_since.isoformat(), *ids))]

    def followups_of(self, ids: Iterable[str]) -> list[FollowupRow]:
        """Every follow-up decided for any of ``ids``."""
        ids = list(ids)
        sql = f"SELECT * FROM followups WHERE person IN ({','.join('?' * len(ids))}) ORDER BY due, name, uid"
        return [_followup(r) for r in self.conn.execute(sql, ids)] if ids else []

    def people(self, due_by: str | None = None) -> list[dict[str, Any]]:
        """The people snapshot of the last pass; with ``due_by`` (an ISO date), only
        those due that day or earlier."""
        rows = self.conn.execute("SELECT data FROM people" if due_by is None else
                                 "SELECT data FROM people WHERE due <= ?", () if due_by is None else (due_by,))
        return [json.loads(unpack(r[0])) for r in rows]

    def overdue(self, today: str, first: int) -> tuple[int, list[dict[str, Any]]]:
        """How many people are due ``today`` (an ISO date) or earlier, and the entries of
        at least the ``first`` longest overdue (all of those due on the last day among
        them): the snapshot is read no further."""
        count = int(self.conn.execute("SELECT count(*) FROM people WHERE due <= ?", (today,)).fetchone()[0])
        entries: list[dict[str, Any]] = []
        last = None
        for due, data in self.conn.execute("SELECT due, data FROM people WHERE due <= ? ORDER BY due", (today,)):
            if len(entries) >= first and due != last:
                break
            entries.append(json.loads(unpack(data)))
            last = due
        return count, entries

    def people_count(self) -> int:
        """How many people the last pass stored."""
        return int(self.conn.execute("SELECT count(*) FROM people").fetchone()[0])

    def story(self, key: str) -> dict[str, Any]:
        """One person's story ({} when no pass has stored one)."""
        row = self.conn.execute("SELECT data FROM stories WHERE key = ?", (key,)).fetchone()
        return dict(json.loads(unpack(row[0]))) if row else {}

    def people_ids(self) -> set[str]:
        """The key of everyone in the snapshot."""
        return {r[0] for r in self.conn.execute("SELECT key FROM people")}

    def people_keys(self) -> list[tuple[str, dict[str, Any]]]:
        """(key, entry) of everyone in the snapshot."""
        return [(r[0], json.loads(unpack(r[1]))) for r in self.conn.execute("SELECT key, data FROM people")]

    def log_run(self, kind: str, started: dt.datetime, finished: dt.datetime, summary: str) -> None:
        """Append to the run log, which keeps the last ``RUNS_KEPT`` passes (commits)."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO runs(kind, started, finished, summary) VALUES (?,?,?,?)",
                (kind, iso(started), iso(finished), summary),
            )
            # A daemon passes every 15 minutes: kept whole, the log grew by 35,000 rows a year.
            self.conn.execute("DELETE FROM runs WHERE id <= (SELECT max(id) FROM runs) - ?", (RUNS_KEPT,))

    def etag_count(self, collection_id: int) -> int:
        """How many objects a collection holds (``len(etags(...))`` without reading them)."""
        row = self.conn.execute("SELECT objects FROM collections WHERE id=?", (collection_id,)).fetchone()
        return int(row[0]) if row else 0

    def etag_of(self, collection_id: int, href: str) -> str | None:
        """The etag of one object (None: the collection holds no such object)."""
        row = self.conn.execute("SELECT etag FROM objects WHERE collection=? AND href=?",
                                (collection_id, href)).fetchone()
        return None if row is None else str(row[0])


def _collection(row: sqlite3.Row) -> CollectionRow:
    return CollectionRow(
        id=row["id"], account=row["account"], remote_id=row["remote_id"], kind=row["kind"],
        name=row["name"], cursor=row["cursor"], synced_at=parse_iso(row["synced_at"]),
    )


def _followup(row: sqlite3.Row) -> FollowupRow:
    return FollowupRow(
        uid=row["uid"], rule=row["rule"], key=row["key"], person=row["person"], name=row["name"],
        emails=json.loads(row["emails"]), cycle=row["cycle"], due=dt.date.fromisoformat(row["due"]),
        summary=row["summary"], reason=row["reason"], account=row["account"], state=row["state"],
        written_on=dt.date.fromisoformat(row["written_on"]), closed_at=parse_iso(row["closed_at"]),
        user_due=dt.date.fromisoformat(row["user_due"]) if row["user_due"] else None,
    )


# -- encodings of the derived rows (occurrences, contacts) ---------------------
@functools.lru_cache(maxsize=65536)
def _party(email: str | None, name: str | None, partstat: str, cutype: str) -> Party:
    # The same few thousand people attend tens of thousands of meetings: share them.
    return Party(email, name, partstat, cutype)


def _party_from(v: list[Any] | None) -> Party | None:
    return None if v is None else _party(v[0], v[1], v[2], v[3])


def occurrence_json(o: Occurrence) -> list[Any]:
    """The stored form of an occurrence (a line of ``series.data``), before ``pack``.

    A list, not an object: the keys made up a third of every row. Parties drop what
    most have (an individual, no name, no answer) from their end.
    """
    return [o.uid, o.recurrence_id, iso(o.start), int(o.all_day), int(o.cancelled), o.summary,
            _party_short(o.organizer), [_party_short(a) for a in o.attendees], iso(o.last_modified), iso(o.end)]


def occurrence_data(o: Occurrence, packed: bool) -> str | bytes:
    """One occurrence as compact JSON, ``pack``ed if ``packed`` (``Ledger.packs``)."""
    text = json.dumps(occurrence_json(o), separators=(",", ":"), ensure_ascii=False)
    return pack(text) if packed else text


def series_data(occurrences: Iterable[Occurrence], packed: bool) -> tuple[list[int], str | bytes]:
    """What ``Ledger.replace_series`` stores of a series: the epoch seconds its
    occurrences start at, and their JSON, a line each by recurrence id (compact JSON
    holds no newline), ``pack``ed together if ``packed``. A line leaves out the UID
    its JSON starts with (the row has it): it starts with the comma after it."""
    occs = sorted(occurrences, key=lambda o: o.recurrence_id)
    lines = []
    for o in occs:
        text = json.dumps(occurrence_json(o), separators=(",", ":"), ensure_ascii=False)
        lines.append(text[len(_head(o.uid)):])
    text = "\n".join(lines)
    return [_epoch(o.start) for o in occs], pack(text) if packed else text


def _line_start(line: str) -> int:
    """When the occurrence of a stored line (``_lines``) starts, in epoch seconds."""
    d = json.loads(line)
    return _epoch(parse_iso(d[2] if isinstance(d, list) else d["start"]))  # type: ignore[arg-type]


def _head(uid: str) -> str:
    """The start of an occurrence's JSON (``occurrence_json``) up to its UID."""
    return "[" + json.dumps(uid, ensure_ascii=False)


def _lines(uid: str, data: str | bytes) -> list[str]:
    """The occurrences (JSON) of a stored series of ``uid``; a line as schema 3 stored
    it (a whole list, or the object 0.1 wrote) is read as it is."""
    text = unpack(data)
    if not text:
        return []
    head = _head(uid)
    return [head + line if line.startswith(",") else line for line in text.split("\n")]


#: ids from hashes are below 2**47: SQLite stores them in 6 bytes, and they fit PostgreSQL's BIGINT
_IDS = 1 << 47
#: how many ids from its hash a row may take (``Ledger._place``)
_WINDOW = 4


#: one interaction row to store: its meeting (uid, recurrence_id, start, end, summary,
#: account, calendar; times as epoch seconds), others, organised
_Met = tuple[tuple[Any, ...], int, int]


def _met(i: Interaction) -> _Met:
    """An interaction as the row to store."""
    return ((i.uid, i.recurrence_id, _epoch(i.start), None if i.end is None else _epoch(i.end), i.summary, i.account,
             i.calendar), i.others, int(i.organised))


def _deduped(rows: list[_Met]) -> list[_Met]:
    """The rows a person's history stores: as schema 3's key (person, start, uid,
    recurrence_id), the first one of a key counts."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        key = (r[0][2], r[0][0], r[0][1])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


#: a history's digest: this mark, then the sum of its rows' hashes mod 2**128 (a sum,
#: so a pass that replaces a few rows updates it from those rows alone)
_DIGEST = "+"


def _row_sum(rows: Iterable[_Met]) -> int:
    return sum(int.from_bytes(hashlib.blake2b(repr(r).encode(), digest_size=16).digest(), "big") for r in rows)


def _digest_sum(digest: str) -> int:
    return int(digest[len(_DIGEST):], 16)


def _digest(rows: Iterable[_Met], base: int = 0) -> str:
    """The digest of stored rows (``_deduped``), or of ``base`` (a sum) and them."""
    return f"{_DIGEST}{(base + _row_sum(rows)) % (1 << 128):032x}"


def _hash_id(key: str | tuple[Any, ...]) -> int:
    """The first id a row may take (``Ledger._place``), from its key: a text, or a
    tuple of texts, numbers and None (two keys of one text only share a window)."""
    text = key if isinstance(key, str) else "\x1f".join(map(str, key))
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).digest()
    return int.from_bytes(digest, "big") % (_IDS - _WINDOW) + 1


def _window(first: int) -> range:
    """The ids a row whose hash is ``first`` may take."""
    return range(first, first + _WINDOW)


#: what a party usually is (no name, no answer, an individual): dropped from the end of its row
_PARTY_DEFAULTS = (None, None, "", "INDIVIDUAL")


def _party_short(p: Party | None) -> list[Any] | None:
    if p is None:
        return None
    v = [p.email, p.name, p.partstat, p.cutype]
    while v and v[-1] == _PARTY_DEFAULTS[len(v) - 1]:
        v.pop()
    return v


def _party_long(v: list[Any] | None) -> Party | None:
    return None if v is None else _party(*v, *_PARTY_DEFAULTS[len(v):])


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def occurrence_from(d: dict[str, Any] | list[Any], order: int, account: str = "", calendar: str = "",
                    shared: dict[str, str] | None = None) -> Occurrence:
    """An occurrence from its stored form (the JSON of ``all_occurrences``, decoded:
    a list, or the object rows written before 0.2 hold); ``order`` etc. come from its
    collection. ``shared``: strings already made, to use again (a series' occurrences
    repeat its UID and summary: one copy each, not one per occurrence)."""
    if isinstance(d, list):
        uid, rid, start, all_day, cancelled, summary, org, att, mod, end = d
        if shared is not None:
            uid = shared.setdefault(uid, uid)
            summary = shared.setdefault(summary, summary)
        return Occurrence(
            uid=uid, recurrence_id=rid, start=dt.datetime.fromisoformat(start.replace("Z", "+00:00")),
            all_day=bool(all_day), cancelled=bool(cancelled), summary=summary, organizer=_party_long(org),
            attendees=tuple(p for p in map(_party_long, att) if p), last_modified=_when(mod), order=order,
            end=_when(end), account=account, calendar=calendar,
        )
    end = d.get("end")  # absent in rows expanded before ends were kept
    return Occurrence(
        uid=d["uid"], recurrence_id=d["rid"], start=dt.datetime.fromisoformat(d["start"].replace("Z", "+00:00")),
        all_day=d["all_day"], cancelled=d["cancelled"], summary=d["summary"],
        organizer=_party_from(d["org"]), attendees=tuple(p for p in map(_party_from, d["att"]) if p),
        last_modified=dt.datetime.fromisoformat(d["mod"].replace("Z", "+00:00")) if d["mod"] else None,
        order=order, end=dt.datetime.fromisoformat(end.replace("Z", "+00:00")) if end else None,
        account=account, calendar=calendar,
    )


# Texts in a SQLite ledger (objects, series, contacts, people, stories, bases) are
# stored as BLOBs: a format byte, then raw deflate primed with _DICTIONARY (most
# objects are a few hundred bytes, too short for deflate to find much repetition in
# themselves). TEXT values are read as they are: rows written before 0.2 (or, for
# contacts, people, stories and bases, before schema 4), and every row on PostgreSQL.
# The dictionary is part of format 1: a different one needs a new format byte, and
# reading both.
_PACKED_1 = 1
_DICTIONARY = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n"
    b"BEGIN:VTIMEZONE\r\nTZID:\r\nX-LIC-LOCATION:\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0100\r\n"
    b"TZOFFSETTO:+0200\r\nTZNAME:CEST\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:STANDARD\r\n"
    b"BEGIN:DAYLIGHT\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n"
    b"TRIGGER:-PT15M\r\nEND:VALARM\r\nSTATUS:CONFIRMED\r\nTRANSP:OPAQUE\r\nSEQUENCE:0\r\n"
    b"CLASS:PUBLIC\r\nLOCATION:\r\nDESCRIPTION:\r\nCATEGORIES:\r\nCREATED:\r\n"
    b"RRULE:FREQ=WEEKLY;INTERVAL=1;COUNT=;UNTIL=;BYDAY=MO,TU,WE,TH,FR\r\nEXDATE;TZID=\r\n"
    b"RECURRENCE-ID;TZID=\r\nDURATION:PT1H\r\nDTSTART;VALUE=DATE:\r\nDTEND;VALUE=DATE:\r\n"
    b"ORGANIZER;CN=\r\nATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=\r\n"
    b"ATTENDEE;CUTYPE=ROOM;CN=\r\nATTENDEE;PARTSTAT=TENTATIVE;CN=\r\nATTENDEE;PARTSTAT=DECLINED;CN=\r\n"
    b";PARTSTAT=ACCEPTED;CUTYPE=INDIVIDUAL:mailto:\r\nBEGIN:VEVENT\r\nUID:\r\nDTSTAMP:\r\n"
    b"LAST-MODIFIED:\r\nSUMMARY:\r\nDTSTART;TZID=\r\nDTEND;TZID=\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    b'"NEEDS-ACTION"],"TENTATIVE"],"DECLINED"],"ROOM"],"ACCEPTED"],[[".com",".org",null,"T00:00:00Z",'
)


def pack(text: str) -> bytes:
    """``text`` as a SQLite ledger stores it (see ``unpack``)."""
    z = zlib.compressobj(6, zlib.DEFLATED, -15, 5, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY)
    return bytes((_PACKED_1,)) + z.compress(text.encode("utf-8", "surrogatepass")) + z.flush()


def unpack(value: str | bytes) -> str:
    """A stored text: TEXT as it is, a BLOB from ``pack``.

    Raises:
        sqlite3.DataError: a BLOB in a format this syncd does not know.
    """
    if isinstance(value, str):
        return value
    if not value or value[0] != _PACKED_1:
        raise sqlite3.DataError(f"a stored text in an unknown format ({value[:1]!r})")
    z = zlib.decompressobj(-15, _DICTIONARY)
    return (z.decompress(memoryview(value)[1:]) + z.flush()).decode("utf-8", "surrogatepass")


def _due(entry: str) -> str | None:
    """The due date of a snapshot entry (``people --json``), as ``people.due`` holds it."""
    return json.loads(entry).get("due") or None


def _date_json(p: PartialDate | None) -> list[int | None] | None:
    return None if p is None else [p.month, p.day, p.year]


def record_json(r: ContactRecord) -> dict[str, Any]:
    """The stored form of a contact record (a row of ``contacts``)."""
    return {"name": r.name, "emails": list(r.emails), "nick": list(r.nicknames), "groups": list(r.groups),
            "bday": _date_json(r.birthday), "anniv": _date_json(r.anniversary), "ref": r.ref,
            "ms": [[m.label, *(_date_json(m.date) or [])] for m in r.milestones]}


def record_from(d: dict[str, Any], order: tuple[Any, ...], where: str) -> ContactRecord:
    """A stored record; ``where`` names it when the card has no UID."""
    def date(v: list[Any] | None) -> PartialDate | None:
        return None if v is None else PartialDate(v[0], v[1], v[2])

    return ContactRecord(name=d["name"], emails=tuple(d["emails"]), nicknames=tuple(d["nick"]),
                         groups=tuple(d["groups"]), birthday=date(d["bday"]), anniversary=date(d["anniv"]),
                         order=order, ref=d.get("ref") or where,
                         milestones=tuple(Milestone(m[0], PartialDate(m[1], m[2], m[3])) for m in d.get("ms", ())))

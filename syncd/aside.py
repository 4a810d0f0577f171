"""Meetings set aside on disk while a derivation from scratch runs.

Public API: ``Aside`` (``add``, ``has``, ``meetings``, ``close``).

A derivation from scratch gives everyone all their meetings at once. At 200,000 events
that is about a million (person, meeting) pairs: as objects, several times the memory
the rest of a pass takes. So they are set aside in a private SQLite database, a
temporary file that SQLite deletes itself, and each person's are read back while that
person is planned or stored, then let go (``derive.Derivation.each``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence

from syncd.errors import TempFailError
from syncd.model import Meeting, Person

#: rows held before they are written
_BATCH = 20_000

_UTC = dt.timezone.utc


def _time(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, _UTC)


class Aside:
    """The counted meetings of people, one row per meeting and one per (person, meeting)."""

    def __init__(self) -> None:
        # "": a temporary database on disk, private to this connection and deleted with it
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")  # nothing to recover: it dies with the pass
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute('CREATE TABLE meetings(seq INTEGER PRIMARY KEY, start REAL, "end" REAL, uid TEXT, '
                         "rid TEXT, summary TEXT, account TEXT, calendar TEXT, others INTEGER, organised INTEGER)")
        self._db.execute("CREATE TABLE met(person INTEGER, seq INTEGER)")
        # Person objects by ``id``: a person's key may still change (a stranger's id is
        # assigned after every meeting is attached), the object stays the same.
        self._numbers: dict[int, int] = {}
        self._meetings: list[tuple[object, ...]] = []
        self._met: list[tuple[int, int]] = []
        self._seq = 0
        self._indexed = False

    def add(self, meeting: Meeting, people: Sequence[Person]) -> None:
        """Set ``meeting`` aside as one of each of ``people``'s."""
        if not people:
            return
        self._seq += 1
        m = meeting
        self._meetings.append((self._seq, m.start.timestamp(), None if m.end is None else m.end.timestamp(), m.uid,
                               m.recurrence_id, m.summary, m.account, m.calendar, m.others, int(m.organised)))
        numbers = self._numbers
        for p in people:
            n = numbers.get(id(p))
            if n is None:
                n = numbers[id(p)] = len(numbers)
            self._met.append((n, self._seq))
        if len(self._met) >= _BATCH:
            self._flush()

    def has(self, person: Person) -> bool:
        """True if any meeting was set aside for ``person``."""
        return id(person) in self._numbers

    def meetings(self, person: Person) -> list[Meeting]:
        """``person``'s meetings, by start and UID (equal ones in the order they came)."""
        n = self._numbers.get(id(person))
        if n is None:
            return []
        self._flush()
        if not self._indexed:
            try:
                self._db.execute("CREATE INDEX met_person ON met(person, seq)")  # once every row is in: faster
            except sqlite3.Error as exc:
                raise _unwritable(exc) from exc
            self._indexed = True
        out = [Meeting(dt.datetime.fromtimestamp(start, _UTC), summary, uid, rid, _time(end), account, calendar, others,
                       bool(organised))
               for start, end, uid, rid, summary, account, calendar, others, organised in self._db.execute(
                   'SELECT m.start, m."end", m.uid, m.rid, m.summary, m.account, m.calendar, m.others, m.organised '
                   "FROM met JOIN meetings m ON m.seq = met.seq WHERE met.person = ? ORDER BY met.seq", (n,))]
        out.sort(key=lambda m: (m.start, m.uid))  # stable: as ``infer.Directory.attach`` sorts
        return out

    def close(self) -> None:
        """Let the rows go (the file goes with them)."""
        self._db.close()

    def _flush(self) -> None:
        if not self._meetings:
            return
        try:  # each statement commits on its own: with no journal, that costs nothing
            self._db.executemany("INSERT INTO meetings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._meetings)
            self._db.executemany("INSERT INTO met VALUES (?, ?)", self._met)
        except sqlite3.Error as exc:
            raise _unwritable(exc) from exc
        self._meetings, self._met = [], []


def _unwritable(exc: sqlite3.Error) -> TempFailError:
    """A temporary file that cannot grow: nothing of the ledger is lost, and a retry
    with room works (exit 75)."""
    return TempFailError(
        f"cannot set a derivation's meetings aside in SQLite's temporary folder ($SQLITE_TMPDIR, else $TMPDIR, "
        f"else /var/tmp): {exc}. The ledger is intact. Free some space there, or point SQLITE_TMPDIR at a "
        "folder with room, then run syncd again")

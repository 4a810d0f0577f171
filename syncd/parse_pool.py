"""Parsing and expanding calendar objects in worker processes, while the main process
writes the ledger (a backfill on every core).

Public API: ``Prepared``, ``Series``, ``prepare``, ``prepare_parsed``, ``plain``, ``Pool``.

Only the pure part of an object's ingest runs in a worker: ``events.split``, then
``events.expand`` of each UID as if the object were the only one holding it, then the
encoding of what the ledger will store. The main process still decides everything
else, in the same order and inside the same transactions as without workers: it takes
a worker's expansion only when the ledger says no other object holds that UID, and
otherwise expands from the ledger itself. Workers write nothing and log nothing (the
warnings, naming account and href, are the main process's); a worker that dies only
costs the time: the object is then read in the main process.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncd_connectors.base import (
    EVENTS,
    ChangeBatch,
    Changes,
    ChangeStream,
    Collection,
    Connector,
    RawObject,
)

if TYPE_CHECKING:  # the process machinery loads only when a batch is big enough
    import concurrent.futures
    from concurrent.futures import Future

log = logging.getLogger(__name__)

#: a listing bringing fewer changed objects than this is read in-process: starting
#: workers costs more than a few hundred objects take to parse
MIN_TOTAL = 400
#: a batch this big uses workers even when the listing's size is unknown
MIN_BATCH = 100
#: objects per task: small enough that the main process does not wait long for the
#: first of a batch, big enough that the round trips do not count
CHUNK = 16


@dataclass
class Series:
    """One UID of an object, expanded (or why it could not be)."""

    starts: list[int]  # for ``Ledger.replace_series``: what ``ledger.series_data`` made
    data: str | bytes
    recurring: bool = False
    notes: list[str] | None = None
    error: str | None = None


@dataclass
class Prepared:
    """What a worker made of one object."""

    #: the text for ``Ledger.put_object``, packed if the ledger packs; None for a plain
    #: one, which the ledger mostly keeps no text of (the caller has it if it must)
    stored: str | bytes | None
    uids: list[str]
    problems: list[str]
    series: dict[str, Series]
    plain: bool = False  # ``plain``: its occurrence says all of it


def plain(parsed: Any) -> bool:
    """Whether a parsed object (``events.split``) is one plain single meeting: one
    VEVENT, no recurrence, no problem, its times absolute (neither floating nor a
    date: the configured time zone does not change them), no SEQUENCE past 0, and
    names and summary a rebuilt text (``events.text_of``) keeps as they are. Its one
    occurrence then says all the ledger needs of it, whatever the window."""
    import datetime as dt_

    if parsed.problems or len(parsed.by_uid) != 1:
        return False
    (uid, comps), = parsed.by_uid.items()
    if len(comps) != 1 or uid.startswith("(no uid)"):
        return False
    comp = comps[0]
    if any(comp.get(p) is not None for p in ("rrule", "rdate", "exdate", "recurrence-id")):
        return False
    if str(comp.get("sequence", "0")).strip() not in ("", "0"):
        return False
    for prop in ("dtstart", "dtend"):
        value = comp.get(prop)
        if value is None:
            if prop == "dtstart":
                return False
            continue
        when = getattr(value, "dt", None)
        if not isinstance(when, dt_.datetime) or when.tzinfo is None:
            return False
    from syncd import events

    return events.rebuildable(comp)


def prepare(items: list[tuple[str, str]], start: dt.datetime, end: dt.datetime, zone: dt.tzinfo,
            packed: bool) -> list[Prepared]:
    """Parse and expand each (href, text), as ``Ingest._apply`` would in-process."""
    from syncd import events

    return [prepare_parsed(events.split(text), text, start, end, zone, packed) for _href, text in items]


def prepare_parsed(parsed: Any, text: str, start: dt.datetime, end: dt.datetime, zone: dt.tzinfo,
                   packed: bool) -> Prepared:
    """``prepare`` of one object, ``events.split`` already."""
    from syncd import events
    from syncd.errors import ParseError
    from syncd.ledger import pack, series_data

    series: dict[str, Series] = {}
    for uid, comps in parsed.by_uid.items():
        notes: list[str] = []
        try:
            occs, recurring = events.expand(uid, comps, parsed.timezones, start, end, zone, notes=notes)
        except ParseError as exc:
            series[uid] = Series([], "", error=str(exc))
            continue
        series[uid] = Series(*series_data(occs, packed), recurring, notes)
    simple = plain(parsed) and all(s.error is None and not s.notes for s in series.values())
    stored = None if simple else pack(text) if packed else text
    return Prepared(stored, sorted(parsed.by_uid), parsed.problems, series, simple)


def _watch(parent: int) -> None:
    """In a worker: exit once ``parent`` (the syncd process) is gone. A killed parent
    tells its workers nothing; they would wait for work forever, and keep the fork
    server alive with them."""
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
                with open(f"/proc/{parent}/stat", "rb") as fh:  # a zombie is gone too
                    gone = fh.read().rpartition(b")")[2].split()[:1] == [b"Z"]
            except ProcessLookupError:
                gone = True
            except OSError:  # no /proc (not Linux), or not ours to signal: the first check only
                gone = False
            if gone:
                os._exit(0)

    threading.Thread(target=watch, name="syncd-parent-watch", daemon=True).start()


def _context() -> Any:
    import multiprocessing

    # A fork server: its workers start in milliseconds with the parsers imported, and
    # inherit nothing of this process (no ledger connection, no lock file descriptor).
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["syncd.events", "syncd.ledger", "syncd.parse_pool"])
        return ctx
    return multiprocessing.get_context("spawn")


class Pool:
    """Workers reading the event objects of big batches ahead of the main process.

    ``ahead(conn)`` wraps a connector: each batch its ``changes`` yields is handed to
    the workers before the main process sees it; ``take(obj)`` then returns what a
    worker made of ``obj`` (waiting for it), or None when it was not sent (a small
    batch, a contact, a failed worker): the caller then reads it itself.
    """

    def __init__(self, start: dt.datetime, end: dt.datetime, zone: dt.tzinfo, packed: bool,
                 workers: int | None = None) -> None:
        self.window = (start, end, zone, packed)
        self.workers = workers or min(2, os.cpu_count() or 1)
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._sent: dict[int, tuple[RawObject, Future[list[Prepared]], int]] = {}

    def ahead(self, conn: Connector) -> Connector:
        """``conn``, with the objects of its big batches sent to the workers."""
        if self.workers < 2:
            return conn  # one core: the main process is the fastest reader
        return _Ahead(conn, self)  # type: ignore[return-value]

    def send(self, batch: ChangeBatch, known: Mapping[str, str], big: bool) -> bool:
        """Hand the changed objects of ``batch`` to the workers if it is big enough;
        whether they have them."""
        todo = [o for o in batch.upserts if known.get(o.href) != o.etag]
        if not todo or not (big or len(todo) >= MIN_BATCH):
            return False
        import concurrent.futures

        try:
            if self._executor is None:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=_context(), initializer=_watch, initargs=(os.getpid(),))
            for i in range(0, len(todo), CHUNK):
                chunk = todo[i:i + CHUNK]
                fut = self._executor.submit(prepare, [(o.href, o.data) for o in chunk], *self.window)
                for k, obj in enumerate(chunk):
                    self._sent[id(obj)] = (obj, fut, k)
        except Exception as exc:  # no processes here (a sandbox, a limit): read in-process
            log.debug("no worker processes: %s", exc)
            self.workers = 1
            self.close()
            return False
        return True

    def take(self, obj: RawObject) -> Prepared | None:
        """What a worker made of ``obj``; None if it was not sent or the worker failed."""
        entry = self._sent.pop(id(obj), None)
        if entry is None or entry[0] is not obj:
            return None
        import concurrent.futures

        try:
            return entry[1].result()[entry[2]]
        except concurrent.futures.process.BrokenProcessPool as exc:
            log.debug("a worker process died: %s", exc)
            self.workers = 1
            self.close()
            return None

    def close(self) -> None:
        """Stop the workers (what they still had to do is dropped)."""
        self._sent.clear()
        if self._executor is not None:
            # waited for: a manager thread left behind fails at exit ("Bad file descriptor"
            # traceback) when the pass ended early, e.g. on a full disk; only started chunks run on
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class _Ahead:
    """A connector whose ``changes`` feeds the pool; everything else is the connector's."""

    def __init__(self, conn: Connector, pool: Pool) -> None:
        self._conn = conn
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def changes(self, collection: Collection, cursor: str | None, known: Mapping[str, str],
                since: dt.datetime) -> Changes:
        batches = ChangeStream(self._conn.changes(collection, cursor, known, since))
        if collection.kind != EVENTS:
            yield from batches
            return batches.cursor
        big = False
        pending = iter(batches)
        try:
            batch = next(pending, None)
            while batch is not None:
                big = big or (batch.total or 0) >= MIN_TOTAL
                if not (self._pool.workers > 1 and self._pool.send(batch, known, big)):
                    yield batch
                    batch = next(pending, None)
                    continue
                # The next batch is read while the workers parse this one: between two
                # batches they would otherwise wait while the main process stores,
                # commits and reads. A failure to read it comes once this batch is in.
                failed: Exception | None = None
                try:
                    after = next(pending, None)
                except Exception as exc:
                    after, failed = None, exc
                yield batch
                if failed is not None:
                    raise failed
                batch = after
        finally:
            self._pool.close()
        return batches.cursor  # the connector's: this only reads its listing ahead

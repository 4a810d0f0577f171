"""Connectors -> ledger: bring the ledger up to date with each account.

Public API: ``Ingest`` (``sync_account``, ``window``, ``refresh_window``),
``AccountResult`` and ``bump``.

Each batch of remote changes commits with the occurrences it implies; a collection's
cursor commits once its listing ended, after its last batch, so a crash loses nothing
committed and a rerun goes on from there. Recurring series are expanded over a window (from the earliest
backfill start to past the horizon) and expanded further as time moves on.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncd import errors
from syncd.accounts import Accounts
from syncd.config import Config
from syncd.context import AccountContext
from syncd.errors import AccountError, ParseError, SyncdError
from syncd.ledger import Ledger, disk_full, occurrence_from, record_json, series_data
from syncd_connectors.base import (
    CONTACTS,
    EVENTS,
    ChangeBatch,
    ChangeStream,
    Collection,
    Connector,
    RawObject,
)

if TYPE_CHECKING:
    from syncd.parse_pool import Pool, Prepared, Series

log = logging.getLogger(__name__)

DEFAULT_SINCE = dt.timedelta(days=5 * 365)
#: recurring series are expanded this far past the horizon, so most passes need none
SLACK = dt.timedelta(days=14)

#: parsed objects kept for re-expansion (an export file shares its UIDs with many others)
_PARSED_CACHE = 64

#: account, collection name, objects applied, and (first call of a listing, when the
#: connector knows it) how many objects the listing holds in all
Progress = Callable[[str, str, int, "int | None"], None]


@dataclass
class AccountResult:
    """The outcome of syncing one account; a failure keeps its exception (and type)."""

    account: str
    exc: BaseException | None = None
    changed: int = 0
    skipped: int = 0

    @property
    def ok(self) -> bool:
        """True when the account synced."""
        return self.exc is None

    @property
    def error(self) -> str | None:
        """The failure as the user reads it (the account named once)."""
        return None if self.exc is None else errors.message(self.exc, self.account)

def bump(ledger: Ledger) -> None:
    """Note that the inference inputs changed (inside a transaction)."""
    ledger.set_meta("generation", str(int(ledger.meta("generation") or 0) + 1))


class Ingest:
    """Syncs accounts into the ledger."""

    def __init__(self, config: Config, ledger: Ledger, accounts: Accounts, now: Callable[[], dt.datetime],
                 progress: Progress | None = None, allow_empty: Iterable[str] = ()) -> None:
        self.config = config
        self.ledger = ledger
        self.accounts = accounts
        self.now = now
        self.progress = progress
        self.allow_empty = frozenset(allow_empty)  # accounts whose empty collections are believed
        self._parsed: collections.OrderedDict[tuple[int, str], tuple[str, Any]] = collections.OrderedDict()
        self._pool: Pool | None = None  # worker processes reading a big listing ahead (parse_pool)

    def window(self, since: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """The expansion window: from the earliest backfill start to past the horizon."""
        now = self.now()
        stored = self.ledger.meta("window_start")
        start = dt.datetime.fromisoformat(stored) if stored else now - DEFAULT_SINCE
        if since is not None and since < start:
            start = since
        return start, now + self.config.horizon + SLACK

    def sync_account(self, name: str, since: dt.datetime | None = None) -> AccountResult:
        """Bring the ledger up to date with one account; failures are recorded, not raised."""
        acc = self.config.account(name)
        result = AccountResult(account=name)
        try:
            conn, ctx = self.accounts.get(name)
            start, end = self.window(since)
            if self.ledger.meta("window_start") != start.isoformat():
                with self.ledger.transaction():
                    self.ledger.set_meta("window_start", start.isoformat())
                    self._reexpand(self.ledger.conn.execute("SELECT collection, uid FROM series").fetchall(),
                                   start, end)
            self._sync_collections(self._ahead(conn, start, end), ctx, name, start, end, result)
            with self.ledger.transaction():
                before = self.ledger.self_addresses()
                self.ledger.set_self_addresses(name, conn.self_addresses())
                if result.changed or self.ledger.self_addresses() != before:
                    bump(self.ledger)
                self.accounts.save_state(name, ctx)
        except SyncdError as exc:
            result.exc = exc
        except Exception as exc:  # a connector bug must not take the other accounts down
            if disk_full(exc):
                raise  # the ledger's disk, not the account: the pass cannot go on
            log.debug("account %s failed", name, exc_info=True)
            result.exc = exc
        if result.error:
            log.error("%s", result.error)
        self.ledger.record_result(name, acc.type, self.now(), result.error)
        return result

    def _sync_collections(self, conn: Connector, ctx: AccountContext, name: str,
                          start: dt.datetime, end: dt.datetime, result: AccountResult) -> None:
        wanted = [c for c in conn.collections() if (c.kind == EVENTS and conn.events) or (c.kind == CONTACTS and conn.contacts)]
        with self.ledger.transaction():
            rows = {c: self.ledger.collection(name, c.kind, c.id, c.name) for c in wanted}
            keep = {r.id for r in rows.values()}
            for old in self.ledger.collections(name):
                if old.id not in keep:
                    log.info("account %s: %s %s is no longer configured; forgetting it", name, old.kind, old.name)
                    self.ledger.drop_collection(old.id)
        for coll, row in rows.items():
            known = _Known(self.ledger, row.id)
            mentioned: set[str] = set()
            stream = ChangeStream(conn.changes(coll, row.cursor, known, start))
            for batch in _believed(stream, known, name, coll, name in self.allow_empty):
                if not (batch.upserts or batch.deletes):
                    continue
                with self.ledger.transaction():
                    for obj in batch.upserts:
                        mentioned.add(obj.href)
                        if known.get(obj.href) == obj.etag:
                            continue
                        result.skipped += self._apply(name, coll, row.id, obj, start, end)
                        result.changed += 1
                    for href in batch.deletes:
                        if href in known or href in mentioned:
                            self._remove(name, row.id, href, start, end)
                            result.changed += 1
                    self.accounts.save_state(name, ctx)
                if self.progress and (batch.upserts or batch.total):
                    self.progress(name, coll.name, len(batch.upserts), batch.total)
            # The listing ended (a raise above leaves the old cursor): every batch is in.
            with self.ledger.transaction():
                self.ledger.set_cursor(row.id, stream.cursor, self.now())
                self.accounts.save_state(name, ctx)

    def _apply(self, account: str, coll: Collection, cid: int, obj: RawObject,
               start: dt.datetime, end: dt.datetime) -> int:
        """Store one object and what it implies; returns 1 if (part of) it was skipped."""
        skipped = 0
        if coll.kind == CONTACTS:
            from syncd import vcard  # each parser loads only when something of its kind changed

            records = []
            for item in vcard.parse(obj.data):
                if isinstance(item, ParseError):
                    log.warning("account %s: %s: skipped a contact: %s", account, obj.href, item)
                    skipped = 1
                else:
                    records.append(json.dumps(record_json(item)))
            self.ledger.put_object(cid, obj.href, obj.etag, "", [], self.ledger.object_uids(cid, obj.href))
            self.ledger.put_contacts(cid, obj.href, records)
            return skipped
        from syncd import events, parse_pool

        prep = self._pool.take(obj) if self._pool is not None else None
        parsed = None
        if prep is not None:
            problems, uids = prep.problems, prep.uids
        else:
            parsed = events.split(obj.data)
            problems, uids = parsed.problems, sorted(parsed.by_uid)
            if parse_pool.plain(parsed):  # read as a worker would: it may be stored as its occurrence
                prep = parse_pool.prepare_parsed(parsed, obj.data, start, end, self.config.timezone, self.ledger.packs)
        for problem in problems:
            log.warning("account %s: %s: skipped an event: %s", account, obj.href, problem)
            skipped = 1
        old = self.ledger.object_uids(cid, obj.href)
        # A plain single meeting that no other object of the collection holds keeps no
        # text: its occurrence says all of it (``_rebuilt`` makes one should that change).
        lean = prep is not None and prep.plain and self.ledger.hrefs_with_uid(cid, uids[0]) in ([], [obj.href])
        text = obj.data if prep is None or prep.stored is None else prep.stored
        self.ledger.put_object(cid, obj.href, obj.etag, "" if lean else text, uids, old)
        for uid in sorted(set(old or ()) | set(uids)):
            skipped |= self._expand(account, cid, uid, start, end, {obj.href: parsed} if parsed is not None else {},
                                    ready=(obj.href, prep) if prep is not None else None)
        return skipped

    def _remove(self, account: str, cid: int, href: str, start: dt.datetime, end: dt.datetime) -> None:
        for uid in self.ledger.delete_object(cid, href):
            self._expand(account, cid, uid, start, end, {})

    def _expand(self, account: str, cid: int, uid: str, start: dt.datetime, end: dt.datetime,
                cache: dict[str, Any], ready: tuple[str, Prepared] | None = None) -> int:
        """Re-expand one UID from every object of the collection holding it; ``ready``
        is (href, what a worker made of it), taken when that object alone holds it."""
        from syncd import events
        from syncd.parse_pool import Series

        comps: list[Any] = []
        tzs: list[Any] = []
        href = ""
        if ready is not None and uid in ready[1].series and self.ledger.hrefs_with_uid(cid, uid) == [ready[0]]:
            return self._store(account, cid, uid, ready[0], ready[1].series[uid], end)
        holders = self.ledger.objects_with_uid(cid, uid)
        if len(holders) == 1 and not holders[0][1] and holders[0][0] not in cache:
            return 0  # a plain single meeting, stored as its occurrence: no window changes it
        for href, data in holders:
            if not data and href not in cache:
                data = self._rebuilt(cid, uid, href)
            parsed = cache.get(href) or self._split(cid, href, data)
            comps.extend(parsed.by_uid.get(uid, []))
            tzs.extend(parsed.timezones)
        if not comps:
            self.ledger.drop_series(cid, uid)
            return 0
        notes: list[str] = []
        try:
            occs, recurring = events.expand(uid, comps, tzs, start, end, self.config.timezone, notes=notes)
        except ParseError as exc:
            return self._store(account, cid, uid, href, Series([], "", error=str(exc)), end)
        return self._store(account, cid, uid, href, Series(*series_data(occs, self.ledger.packs), recurring, notes), end)

    def _rebuilt(self, cid: int, uid: str, href: str) -> str:
        """The text of an object kept without one (a plain single meeting, the only one
        holding ``uid`` until now), rebuilt from its stored occurrence and stored: from
        now on another object shares its UID, and their expansion needs both."""
        from syncd import events

        lines = self.ledger.series_lines(cid, uid)
        if not lines:  # cannot happen: such an object is stored with its occurrence
            log.debug("no stored occurrence of %s to rebuild %s from", uid, href)
            return ""
        text = events.text_of(occurrence_from(json.loads(lines[0]), 0))
        self.ledger.set_object_text(cid, href, text)
        return text

    def _store(self, account: str, cid: int, uid: str, href: str, series: Series, end: dt.datetime) -> int:
        """Store one expanded UID (from this process or a worker); 1 if it was skipped."""
        if series.error is not None:
            log.warning("account %s: %s: skipped event %s: %s", account, href, uid, series.error)
            self.ledger.drop_series(cid, uid)
            return 1
        for note in series.notes or ():
            log.warning("account %s: %s: event %s cut: %s", account, href, uid, note)
        self.ledger.replace_series(cid, uid, series.starts, series.data, series.recurring, end)
        return 0

    def _ahead(self, conn: Connector, start: dt.datetime, end: dt.datetime) -> Connector:
        """``conn``, its big listings of events read ahead by worker processes."""
        from syncd.parse_pool import Pool

        self._pool = Pool(start, end, self.config.timezone, self.ledger.packs)
        return self._pool.ahead(conn)

    def _split(self, cid: int, href: str, data: str) -> Any:
        """``events.split`` of a stored object, remembered for the next UIDs it holds.

        An export file repeating every UID of a folder is read once per UID; parsing it
        each time made such a folder quadratic. The parsed objects are only read (the
        expansion copies what it changes), and the cache is small and keyed on the text.
        """
        from syncd import events

        hit = self._parsed.get((cid, href))
        if hit is not None and hit[0] == data:
            self._parsed.move_to_end((cid, href))
            return hit[1]
        parsed = events.split(data)
        self._parsed[(cid, href)] = (data, parsed)
        if len(self._parsed) > _PARSED_CACHE:
            self._parsed.popitem(last=False)
        return parsed

    def _reexpand(self, series: list[tuple[int, str]], start: dt.datetime, end: dt.datetime) -> None:
        owner = {c.id: c.account for c in self.ledger.collections()}
        for cid, uid in series:
            self._expand(owner.get(cid, "?"), cid, uid, start, end, {})

    def refresh_window(self) -> None:
        """Expand recurring series further as time moves on (a transaction)."""
        start, end = self.window()
        stale = self.ledger.stale_series(end - SLACK)
        if stale:
            with self.ledger.transaction():
                self._reexpand(stale, start, end)
                bump(self.ledger)


#: objects ``_Known`` looks up one by one before it reads the whole collection
_FEW = 64


class _Known(Mapping[str, str]):
    """href -> etag of a collection in the ledger, read when first looked into: a
    connector that can tell nothing changed without it (vdir) asks only ``len``,
    which is a count, and the first ``_FEW`` objects the core checks are looked up
    one by one (a pass after a few edits reads a few rows, not 20,000)."""

    def __init__(self, ledger: Ledger, collection_id: int) -> None:
        self._ledger = ledger
        self._id = collection_id
        self._etags: dict[str, str] | None = None
        self._count: int | None = None
        self._looked = 0

    @property
    def etags(self) -> dict[str, str]:
        """The whole mapping, read once."""
        if self._etags is None:
            self._etags = self._ledger.etags(self._id)
        return self._etags

    def __getitem__(self, href: str) -> str:
        return self.etags[href]

    def get(self, href: str, default: Any = None) -> Any:  # type: ignore[override]
        if self._etags is None and self._looked < _FEW:
            self._looked += 1
            found = self._ledger.etag_of(self._id, href)
            return default if found is None else found
        return self.etags.get(href, default)

    def __contains__(self, href: object) -> bool:
        return (self.get(href) if isinstance(href, str) else None) is not None

    def items(self) -> ItemsView[str, str]:
        # The dict's own view: a set difference against it runs in C (a folder of
        # 20,000 files compares in milliseconds, not in 20,000 calls of ``get``).
        return self.etags.items()

    def __iter__(self) -> Iterator[str]:
        return iter(self.etags)

    def __len__(self) -> int:
        if self._etags is not None:
            return len(self._etags)
        if self._count is None:  # asked twice a pass (the connector, ``_believed``): a count scans the rows
            self._count = self._ledger.etag_count(self._id)
        return self._count


def _believed(batches: Iterable[ChangeBatch], known: Mapping[str, str], account: str, coll: Collection,
              allow: bool) -> Iterator[ChangeBatch]:
    """``batches``, unless they would empty a collection that held objects (SPEC §6).

    An unmounted folder or a server answering with an empty collection looks exactly
    like "everything was deleted"; believing it would wipe the history and then flood
    the list with catch-ups. Batches that carry only deletions are held back until
    something else shows up (then they pass unchanged, in order); if the listing ends
    and would leave nothing of what the ledger held, nothing is applied and the account
    fails, unless ``allow`` (``syncd sync --allow-empty ACCOUNT``) accepts it this once.

    Raises:
        AccountError: the listing would empty the collection and ``allow`` is false.
    """
    held: list[ChangeBatch] = []
    passing = not known  # nothing to lose: nothing to check
    for batch in batches:
        if not passing and batch.upserts:
            passing = True
            yield from held
            held.clear()
        if passing:
            yield batch
        else:
            held.append(batch)
    # The listing ended with deletions only (or nothing at all).
    if held and set(known) <= {h for b in held for h in b.deletes}:
        if not allow:
            raise AccountError(
                f"account {account!r}: {coll.kind} collection {coll.name!r} held {len(known)} "
                "objects and now lists none; not believed, nothing deleted (an unmounted "
                "folder? a server problem?). If it really is empty: "
                f"syncd sync --allow-empty {account}")
        log.warning("account %s: %s is empty now; accepted (--allow-empty)", account, coll.name)
    yield from held

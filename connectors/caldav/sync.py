"""Incremental listing and fetching of one collection (RFC 6578, with an etag fallback).

``listing()`` answers "what changed since this token" in one request: a
``sync-collection`` REPORT asking only for ``getetag``. When the collection has no
sync support, or the server rejects the token (403/409/412 ``valid-sync-token``), it
lists the whole collection instead (a fresh sync-collection, or PROPFIND Depth 1
``getetag``) and marks the answer ``full``. A server that ignores the token and
silently answers with everything is recognised by the unchanged etags it repeats, and
treated as full too. A truncated answer (RFC 6578 §3.6, a 507 for the collection) is
continued, then checked against a PROPFIND listing of every etag.

A backfill (no token, nothing known) asks for the objects' data in that same
sync-collection REPORT: one request gives the token and every object, consistent with
each other. On Radicale (``bench/caldav_bench.py``) that costs about as much as its
listing alone (its sync-collection is the expensive part; a calendar-query costs the
whole collection per request, time range or not, so chunking by time would not help).
Xandikos answers the same REPORT with the etags and no data, at no extra cost. A
server that refuses a REPORT that big (a stock Radicale refuses one holding over
10,000 events) or sends no data is listed plainly and remembered for that collection
(``strategy``, kept in the account's state), so it is not asked again.

``fetch()`` reads changed objects with calendar-/addressbook-multiget in chunks of at
most ``CHUNK`` hrefs. A multiget the server refuses (400/413/507) is halved; what an
answer leaves out is asked again while answers make progress, then with one GET per
href (an href it answers 404 for goes straight to its GET). Many objects (a backfill the server would not answer in one
REPORT) are fetched in multigets of ``BULK_CHUNK`` hrefs by a background thread that
keeps ``PREFETCH`` chunks ahead, so the server works on the next chunk while the core
parses this one.

A partial answer is never the truth (SPEC §6): an object is deleted only for a
sync-collection 404 entry or a GET answering 404, never for being absent from a
listing or a multiget; an object that can be neither fetched nor confirmed gone fails
the pass (``TransientError``) before its token is handed to the core.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field

from syncd.errors import TransientError
from syncd_connectors.base import CONTACTS, ChangeBatch, Changes, RawObject
from syncd_connectors.caldav import dav
from syncd_connectors.caldav.http import Http

log = logging.getLogger("syncd_connectors.caldav")

CHUNK = 200
BULK = 1000  # objects to fetch from which multigets grow to BULK_CHUNK and run ahead
BULK_CHUNK = 1000
PREFETCH = 2  # chunks a bulk fetch keeps ready ahead of the core
AHEAD = 1000  # objects in a backfill's listing from which the next collection's is taken ahead
LISTING_ONLY = "listing"  # strategy of a collection that refused its data with the listing
REJECTED = (403, 409, 412)
MAX_PAGES = 50  # continuations of a truncated sync-collection answer


class Gone(TransientError):
    """The collection itself is gone (404): the discovery cache is stale."""


@dataclass
class Listing:
    """What a collection holds or what changed in it."""

    present: dict[str, str] = field(default_factory=dict)  # href -> etag
    deleted: list[str] = field(default_factory=list)
    token: str | None = None
    full: bool = False
    objects: dict[str, RawObject] = field(default_factory=dict)  # data the listing carried


def _report(http: Http, href: str, body: str) -> dav.Multistatus | int:
    resp = http.request("REPORT", href, body, {**dav.XML_HEADERS, "Depth": "1"})
    if resp.status == 404:
        raise Gone(f"account {http.account!r}: collection {href} not found; rediscovering")
    if resp.status != 207:
        return resp.status
    try:
        return dav.parse(resp.content)
    except ValueError as exc:
        raise http.fail("REPORT", href, resp, str(exc)) from None


def _entries(ms: dav.Multistatus, collection: str, listing: Listing, data: str | None = None) -> bool:
    """Add the entries of ``ms`` to ``listing``; True if the server says it truncated them.

    ``data``: the Clark name of the object data the answer carries (kept in ``objects``).

    RFC 6578 §3.6: a truncated answer carries a 507 response for the collection itself.
    A later entry for the same href wins over an earlier one (pages come in order).
    """
    own = dav.key(collection)
    truncated = False
    for entry in ms.entries:
        if dav.key(entry.href).rstrip("/") == own.rstrip("/"):
            truncated = truncated or entry.status == 507
            continue  # the collection itself
        if entry.status == 404:
            listing.present.pop(entry.href, None)
            listing.objects.pop(entry.href, None)
            listing.deleted.append(entry.href)
            continue
        if entry.href.endswith("/"):
            continue  # a sub-collection
        etag = listing.present[entry.href] = entry.text(dav.q(dav.D, "getetag")) or ""
        text = entry.text(data) if data else None
        if text:
            listing.objects[entry.href] = RawObject(entry.href, etag, text)
        else:
            listing.objects.pop(entry.href, None)  # an older page's data is stale
    return truncated


def _propfind_listing(http: Http, href: str) -> Listing:
    resp = http.request(
        "PROPFIND", href, dav.propfind("D:getetag", "D:resourcetype"),
        {**dav.XML_HEADERS, "Depth": "1"},
    )
    if resp.status == 404:
        raise Gone(f"account {http.account!r}: collection {href} not found; rediscovering")
    if resp.status != 207:
        raise http.fail("PROPFIND", href, resp)
    listing = Listing(full=True)
    try:
        _entries(dav.parse(resp.content), href, listing)
    except ValueError as exc:
        raise http.fail("PROPFIND", href, resp, str(exc)) from None
    listing.deleted = []
    return listing


def listing(
    http: Http, href: str, token: str | None, known: Mapping[str, str], sync: bool = True,
    data: str | None = None,
) -> Listing:
    """What changed in collection ``href`` since ``token`` (None: everything).

    ``data`` (``"C:calendar-data"`` or ``"CR:address-data"``): ask for the objects
    themselves too (they land in ``objects``); a server that refuses that is asked
    again for the etags alone, and the answer's ``objects`` is empty.

    The answer is ``full`` when it lists the whole collection (an initial sync, a
    rejected token, no sync support): then anything in ``known`` it omits may be gone,
    which the caller confirms with a GET. A truncated answer (RFC 6578 §3.6) is
    continued with the token it carries, up to ``MAX_PAGES``; because a truncated answer
    says only that something is missing, not what, the collection's etags are then
    listed in full as well (PROPFIND) and the answer becomes ``full``.
    """
    if not sync:
        return _propfind_listing(http, href)
    props = ("D:getetag", data) if data else ("D:getetag",)
    ms = _report(http, href, dav.sync_collection(token, *props))
    if isinstance(ms, int) and data:
        log.info("account %s: %s: listing with the data refused (HTTP %d); listing etags",
                 http.account, href, ms)
        props, data = ("D:getetag",), None
        ms = _report(http, href, dav.sync_collection(token, *props))
    if isinstance(ms, int) and token is not None and ms in REJECTED:
        log.info("account %s: %s: sync token rejected (HTTP %d); full listing", http.account, href, ms)
        token = None
        ms = _report(http, href, dav.sync_collection(None, *props))
    if isinstance(ms, int) or ms.sync_token is None:
        log.info("account %s: %s: no sync-collection; listing etags", http.account, href)
        return _propfind_listing(http, href)
    name = _prop_name(data) if data else None
    out = Listing(token=ms.sync_token, full=token is None)
    truncated = _entries(ms, href, out, name)
    was_truncated = truncated
    for _ in range(MAX_PAGES):
        if not truncated or out.token is None:
            break
        log.info("account %s: %s: answer truncated by the server; continuing", http.account, href)
        page = _report(http, href, dav.sync_collection(out.token, *props))
        if isinstance(page, int) or page.sync_token is None:
            break  # the continuation was refused: the PROPFIND below lists everything
        out.token = page.sync_token
        truncated = _entries(page, href, out, name)
    if was_truncated:
        everything = _propfind_listing(http, href)
        out.deleted = [h for h in out.deleted if h not in everything.present]
        out.present = everything.present
        out.objects = {h: o for h, o in out.objects.items() if everything.present.get(h) == o.etag}
        out.full = True
    if token is not None and not out.full and known:
        same = sum(1 for h, e in out.present.items() if e and known.get(h) == e)
        if same >= max(1, len(known) // 2):
            log.info("account %s: %s: server ignored the sync token; full listing", http.account, href)
            out.full = True
    if out.full:
        out.deleted = []
    return out


def _prop_name(prop: str) -> str:
    """``"C:calendar-data"`` in Clark notation."""
    prefix, _, local = prop.partition(":")
    return dav.q({"D": dav.D, "C": dav.C, "CR": dav.CR}[prefix], local)


def _data_prop(kind: str) -> str:
    return "CR:address-data" if kind == CONTACTS else "C:calendar-data"


def _data_name(kind: str) -> str:
    return dav.q(dav.CR, "address-data") if kind == CONTACTS else dav.q(dav.C, "calendar-data")


@dataclass
class Fetched:
    """What one chunk of ``fetch()`` found: the objects, and the hrefs a GET answered 404."""

    objects: list[RawObject] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def _multiget(
    http: Http, href: str, kind: str, hrefs: list[str]
) -> tuple[list[RawObject], list[str], set[str]] | None:
    """One multiget: the objects returned, the hrefs it did not return, and of those
    the ones it answered 404 for; None when the server refuses a multiget this big.

    A missing href is never taken as deleted here: the caller asks again.
    """
    ns = "CR" if kind == CONTACTS else "C"
    resp = http.request("REPORT", href, dav.multiget(ns, hrefs), {**dav.XML_HEADERS, "Depth": "1"})
    if resp.status in (400, 413, 507):
        log.info("account %s: %s: multiget of %d refused (HTTP %d)",
                 http.account, href, len(hrefs), resp.status)
        return None
    if resp.status != 207:
        raise http.fail("REPORT", href, resp)
    try:
        ms = dav.parse(resp.content)
    except ValueError as exc:
        raise http.fail("REPORT", href, resp, str(exc)) from None
    wanted = {dav.key(h): h for h in hrefs}
    name = _data_name(kind)
    out, said_404 = [], set()
    for entry in ms.entries:
        original = wanted.get(dav.key(entry.href))
        data = entry.text(name)
        if original is None:
            continue
        if entry.status == 404:
            said_404.add(original)  # confirmed by a GET, like a missing one
        if entry.status != 200 or not data:
            continue
        del wanted[dav.key(entry.href)]
        out.append(RawObject(original, entry.text(dav.q(dav.D, "getetag")) or "", data))
    return out, list(wanted.values()), said_404


def _get(http: Http, href: str) -> RawObject | None:
    """The object at ``href``, or None when the server answers 404/410 (it is gone).

    Raises:
        TransientError: the server would not say (anything but 200 or 404/410).
    """
    resp = http.request("GET", href)
    if resp.status in (404, 410):
        return None
    if resp.status != 200 or not resp.content:
        raise TransientError(
            f"account {http.account!r}: {dav.path(href)}: listed but not returned "
            f"(GET: HTTP {resp.status}); the pass is retried later"
        )
    return RawObject(href, resp.headers.get("ETag") or resp.headers.get("etag") or "", resp.text)


def _fetch_all(http: Http, href: str, kind: str, hrefs: list[str], got: Fetched) -> None:
    """Fetch ``hrefs`` into ``got``.

    A multiget first; one the server refuses is halved. What an answer leaves out is
    asked again in one multiget while answers make progress, then with one GET each.
    """
    while hrefs:
        if len(hrefs) == 1:
            _get_one(http, hrefs[0], got)
            return
        answer = _multiget(http, href, kind, hrefs)
        if answer is None:  # refused as too big
            half = len(hrefs) // 2
            _fetch_all(http, href, kind, hrefs[:half], got)
            _fetch_all(http, href, kind, hrefs[half:], got)
            return
        objects, missing, said_404 = answer
        got.objects += objects
        for one in (h for h in missing if h in said_404):  # deleted since listed, most likely
            _get_one(http, one, got)
        rest = [h for h in missing if h not in said_404]
        if rest:
            log.info("account %s: %s: multiget left out %d of %d; asking again",
                     http.account, href, len(rest), len(hrefs))
        if not objects:  # no progress: one GET each
            for one in rest:
                _get_one(http, one, got)
            return
        hrefs = rest


def _get_one(http: Http, href: str, got: Fetched) -> None:
    obj = _get(http, href)
    if obj is None:
        log.info("account %s: %s: gone (GET: 404)", http.account, href)
        got.gone.append(href)
    else:
        got.objects.append(obj)


def fetch(http: Http, href: str, kind: str, hrefs: list[str]) -> Iterator[Fetched]:
    """The objects at ``hrefs`` of collection ``href``, one ``Fetched`` per chunk.

    What a multiget leaves out is asked again, then with one GET each: an href is
    reported ``gone`` only when its GET answers 404 (SPEC §6).

    From ``BULK`` hrefs on, the chunks are ``BULK_CHUNK`` big and fetched ahead in a
    background thread.

    Raises:
        TransientError: an object could be neither fetched nor confirmed gone.
    """
    size = BULK_CHUNK if len(hrefs) >= BULK else CHUNK
    chunks = (hrefs[i : i + size] for i in range(0, len(hrefs), size))
    if len(hrefs) < BULK:
        for chunk in chunks:
            got = Fetched()
            _fetch_all(http, href, kind, chunk, got)
            yield got
        return
    yield from _ahead(http, href, kind, chunks)


_DONE = object()


def _ahead(http: Http, href: str, kind: str, chunks: Iterator[list[str]]) -> Iterator[Fetched]:
    """``_fetch_all`` of each chunk in a background thread, ``PREFETCH`` chunks ahead.

    The session is used by that thread alone while it runs (the caller only waits);
    an error it meets is raised here, in order. Closing the iterator early stops the
    thread after the request in flight.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for chunk in chunks:
                got = Fetched()
                _fetch_all(http, href, kind, chunk, got)
                if not put(got):
                    return
        except BaseException as exc:  # handed over to the caller's thread, raised there
            put(exc)
            return
        put(_DONE)

    worker = threading.Thread(target=work, name=f"caldav-fetch {http.account}", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Fetched)
            yield item
    finally:
        stop.set()
        worker.join()


def backfill_listing(http: Http, href: str, kind: str) -> Listing:
    """The listing a backfill of ``href`` asks for (the objects with it), taken ahead:
    ``changes`` uses it as ``ahead`` as if it had asked itself."""
    return listing(http, href, None, {}, True, _data_prop(kind))


def changes(
    http: Http, href: str, kind: str, cursor: str | None, known: Mapping[str, str], sync: bool,
    strategy: MutableMapping[str, str] | None = None, ahead: Listing | None = None,
) -> Changes:
    """The ``Connector.changes`` of one collection; returns the cursor, JSON ``{"token": ...}``.

    A backfill takes the objects with the listing unless ``strategy`` (collection href
    -> ``LISTING_ONLY``, the account's memory) says this collection refused that; a
    refusal met now is written into ``strategy``. ``ahead``: that backfill listing,
    already taken (``backfill_listing``); ignored for any other listing.

    Nothing is deleted for being absent from a listing: a full listing's absentees are
    fetched like changed objects, and only those a GET answers 404 for are named
    deleted (with the sync-collection's 404 entries). When such an absentee turns out
    to exist, the listing was partial: its token is not kept (the next pass lists
    everything again).
    """
    token = _token(cursor) if sync else None
    strategy = {} if strategy is None else strategy
    with_data = sync and token is None and not known and strategy.get(href) != LISTING_ONLY
    if with_data and ahead is not None:
        found = ahead
    else:
        found = listing(http, href, token, known, sync, _data_prop(kind) if with_data else None)
    if with_data and found.token is not None and found.present and not found.objects:
        strategy[href] = LISTING_ONLY  # it refused the data (or sent none): not asked again
    todo = [h for h, etag in found.present.items() if not etag or known.get(h) != etag]
    carried = [found.objects[h] for h in todo if h in found.objects]
    todo = [h for h in todo if h not in found.objects]
    absent = [h for h in known if h not in found.present] if found.full else []
    deletes = [h for h in found.deleted if h not in found.present]
    new_token = found.token
    batches = _chain((Fetched(carried[i : i + CHUNK]) for i in range(0, len(carried), CHUNK)),
                     fetch(http, href, kind, todo + absent))
    absentees = set(absent)
    # the listing says how many to fetch: a progress bar's total
    total: int | None = len(carried) + len(todo) + len(absent)
    for got in batches:
        if any(o.href in absentees for o in got.objects):
            log.info("account %s: %s: the listing left out objects that exist; "
                     "listing everything next pass", http.account, href)
            new_token = None
        yield ChangeBatch(upserts=got.objects, deletes=deletes + got.gone, total=total)
        deletes, total = [], None
    if deletes:  # nothing to fetch: the deletions alone
        yield ChangeBatch(deletes=deletes)
    return json.dumps({"token": new_token})


def _chain(first: Iterator[Fetched], then: Iterator[Fetched]) -> Iterator[Fetched]:
    yield from first
    yield from then


def _token(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = json.loads(cursor)
    except ValueError:
        return None
    token = value.get("token") if isinstance(value, dict) else None
    return token if isinstance(token, str) else None

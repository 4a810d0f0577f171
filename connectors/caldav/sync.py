"""Incremental listing and fetching of one collection (RFC 6578, with an etag fallback).

``listing()`` answers "what changed since this token" in one request: a
``sync-collection`` REPORT asking only for ``getetag``. When the collection has no
sync support, or the server rejects the token (403/409/412 ``valid-sync-token``), it
lists the whole collection instead (a fresh sync-collection, or PROPFIND Depth 1
``getetag``) and marks the answer ``full``, so deletions are inferred from ``known``.
A server that ignores the token and silently answers with everything is recognised
by the unchanged etags it repeats, and treated as full too.

``fetch()`` reads changed objects with calendar-/addressbook-multiget in chunks of at
most ``CHUNK`` hrefs, halving a chunk the server refuses with 400/413/507, and
tolerating hrefs the server leaves out or answers 404 for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from syncd.errors import TransientError
from syncd_connectors.base import CONTACTS, ChangeBatch, RawObject
from syncd_connectors.caldav import dav
from syncd_connectors.caldav.http import Http

log = logging.getLogger("syncd_connectors.caldav")

CHUNK = 200
REJECTED = (403, 409, 412)


class Gone(TransientError):
    """The collection itself is gone (404): the discovery cache is stale."""


@dataclass
class Listing:
    """What a collection holds or what changed in it."""

    present: dict[str, str] = field(default_factory=dict)  # href -> etag
    deleted: list[str] = field(default_factory=list)
    token: str | None = None
    full: bool = False


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


def _entries(ms: dav.Multistatus, collection: str, listing: Listing) -> None:
    own = dav.key(collection)
    for entry in ms.entries:
        if dav.key(entry.href).rstrip("/") == own.rstrip("/"):
            continue  # the collection itself
        if entry.status == 404:
            listing.deleted.append(entry.href)
            continue
        if entry.href.endswith("/"):
            continue  # a sub-collection
        listing.present[entry.href] = entry.text(dav.q(dav.D, "getetag")) or ""


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
    http: Http, href: str, token: str | None, known: Mapping[str, str], sync: bool = True
) -> Listing:
    """What changed in collection ``href`` since ``token`` (None: everything).

    The answer is ``full`` when it lists the whole collection (an initial sync, a
    rejected token, no sync support): then anything in ``known`` it omits is gone.
    """
    if not sync:
        return _propfind_listing(http, href)
    ms = _report(http, href, dav.sync_collection(token, "D:getetag"))
    if isinstance(ms, int) and token is not None and ms in REJECTED:
        log.info("account %s: %s: sync token rejected (HTTP %d); full listing", http.account, href, ms)
        token = None
        ms = _report(http, href, dav.sync_collection(None, "D:getetag"))
    if isinstance(ms, int) or ms.sync_token is None:
        log.info("account %s: %s: no sync-collection; listing etags", http.account, href)
        return _propfind_listing(http, href)
    out = Listing(token=ms.sync_token, full=token is None)
    _entries(ms, href, out)
    if token is not None and not out.full and known:
        same = sum(1 for h, e in out.present.items() if e and known.get(h) == e)
        if same >= max(1, len(known) // 2):
            log.info("account %s: %s: server ignored the sync token; full listing", http.account, href)
            out.full = True
    if out.full:
        out.deleted = []
    return out


def _data_name(kind: str) -> str:
    return dav.q(dav.CR, "address-data") if kind == CONTACTS else dav.q(dav.C, "calendar-data")


def _multiget(http: Http, href: str, kind: str, hrefs: list[str]) -> list[RawObject]:
    ns = "CR" if kind == CONTACTS else "C"
    resp = http.request("REPORT", href, dav.multiget(ns, hrefs), {**dav.XML_HEADERS, "Depth": "1"})
    if resp.status in (400, 413, 507) and len(hrefs) > 1:
        half = len(hrefs) // 2
        log.info("account %s: %s: multiget of %d refused; halving", http.account, href, len(hrefs))
        return _multiget(http, href, kind, hrefs[:half]) + _multiget(http, href, kind, hrefs[half:])
    if resp.status in (400, 413, 507):
        log.warning("account %s: %s: server refuses to return it (HTTP %d); skipped",
                    http.account, hrefs[0], resp.status)
        return []
    if resp.status != 207:
        raise http.fail("REPORT", href, resp)
    try:
        ms = dav.parse(resp.content)
    except ValueError as exc:
        raise http.fail("REPORT", href, resp, str(exc)) from None
    wanted = {dav.key(h): h for h in hrefs}
    name = _data_name(kind)
    out = []
    for entry in ms.entries:
        original = wanted.pop(dav.key(entry.href), None)
        data = entry.text(name)
        if original is None or entry.status != 200 or not data:
            continue
        out.append(RawObject(original, entry.text(dav.q(dav.D, "getetag")) or "", data))
    for missing in wanted.values():
        log.info("account %s: %s: not returned by multiget (gone?)", http.account, missing)
    return out


def fetch(http: Http, href: str, kind: str, hrefs: list[str]) -> Iterator[list[RawObject]]:
    """The objects at ``hrefs`` of collection ``href``, one list per chunk."""
    for i in range(0, len(hrefs), CHUNK):
        yield _multiget(http, href, kind, hrefs[i : i + CHUNK])


def changes(
    http: Http, href: str, kind: str, cursor: str | None, known: Mapping[str, str], sync: bool
) -> Iterator[ChangeBatch]:
    """The ``Connector.changes`` of one collection; the cursor is JSON ``{"token": ...}``."""
    token = _token(cursor) if sync else None
    found = listing(http, href, token, known, sync)
    todo = [h for h, etag in found.present.items() if not etag or known.get(h) != etag]
    changed = set(todo)
    seen = [h for h in found.present if h not in changed] if found.full else []
    deletes = list(found.deleted)
    if found.full:
        deletes = [h for h in known if h not in found.present]
    new_cursor = json.dumps({"token": found.token}) if found.token else json.dumps({"token": None})
    batches = fetch(http, href, kind, todo)
    pending = next(batches, None)
    first = True
    while True:
        nxt = next(batches, None) if pending is not None else None
        last = nxt is None
        batch = ChangeBatch(upserts=pending or [])
        if first:
            batch.deletes, batch.seen, first = deletes, seen, False
        if last:
            batch.done, batch.cursor, batch.full = True, new_cursor, found.full
        yield batch
        if last:
            return
        pending = nxt


def _token(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = json.loads(cursor)
    except ValueError:
        return None
    token = value.get("token") if isinstance(value, dict) else None
    return token if isinstance(token, str) else None

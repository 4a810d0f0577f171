"""Google Calendar v3 events as iCalendar text, and their incremental listing.

Each Google event is one ``RawObject`` (href = event id, etag = event etag) holding a
VCALENDAR with one VEVENT. An exception instance (``recurringEventId`` +
``originalStartTime``) is a VEVENT with the master's UID and a ``RECURRENCE-ID``; the
core groups components by UID across the objects of a collection. A cancelled
instance is such an override with ``STATUS:CANCELLED``; a cancelled single event or
master is a delete.

Times: a timed event of a recurring series keeps its ``timeZone`` as ``TZID`` (an
IANA name, which the core resolves; no VTIMEZONE is written, to keep 20,000-event
backfills fast), other times are written in UTC; all-day dates are ``VALUE=DATE``.

Listing (Google's "Synchronize resources efficiently" guide): ``events.list`` with
``singleEvents=False``, ``showDeleted=True``, ``maxResults=2500``, following
``nextPageToken``; ``nextSyncToken`` comes on the last page only. ``syncToken`` cannot
be combined with ``timeMin``/``timeMax``/``updatedMin``, so ``timeMin`` (the backfill
bound) is used on the first full sync only; a 410 ``fullSyncRequired`` re-lists the
whole calendar without ``timeMin`` and names every known event it no longer lists as
deleted (so no event older than the bound is dropped). A full listing yields only
events whose etag changed.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Mapping
from typing import Any

import icalendar
from googleapiclient.errors import HttpError

from syncd.errors import AccountError
from syncd_connectors.base import ChangeBatch, Changes, Collection, RawObject, absent
from syncd_connectors.google.client import Client, status_of

log = logging.getLogger(__name__)

PARTSTAT = {"accepted": "ACCEPTED", "declined": "DECLINED", "tentative": "TENTATIVE",
            "needsAction": "NEEDS-ACTION"}
STATUS = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE", "cancelled": "CANCELLED"}
PAGE_SIZE = 2500


def parse_rfc3339(value: str) -> dt.datetime:
    """A Google time (``Z`` or an offset) as an aware datetime."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _zone(name: str | None) -> dt.tzinfo | None:
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def event_time(value: Mapping[str, str], keep_zone: bool) -> dt.date | dt.datetime:
    """Google's ``{date}`` or ``{dateTime, timeZone}`` as a date or an aware datetime."""
    if "date" in value:
        return dt.date.fromisoformat(value["date"])
    when = parse_rfc3339(value["dateTime"])
    zone = _zone(value.get("timeZone")) if keep_zone else None
    return when.astimezone(zone or dt.UTC)


def _address(prop: str, person: Mapping[str, Any]) -> icalendar.vCalAddress:
    addr = icalendar.vCalAddress("mailto:" + str(person.get("email", "")))
    if person.get("displayName"):
        addr.params["CN"] = person["displayName"]
    return addr


def vevent(event: Mapping[str, Any], uid: str) -> icalendar.Event:
    """One VEVENT for a Google event (``uid``: its iCalUID or its master's)."""
    comp = icalendar.Event()
    comp.add("uid", uid)
    recurring = bool(event.get("recurrence") or event.get("recurringEventId"))
    if "start" in event or "originalStartTime" in event:  # a cancelled instance has no start
        comp.add("dtstart", event_time(event.get("start") or event["originalStartTime"], recurring))
    if "end" in event:
        comp.add("dtend", event_time(event["end"], recurring))
    if "originalStartTime" in event:
        comp.add("recurrence-id", event_time(event["originalStartTime"], True))
    comp.add("dtstamp", parse_rfc3339(event["updated"]) if event.get("updated") else dt.datetime.now(dt.UTC))
    if event.get("updated"):
        comp.add("last-modified", parse_rfc3339(event["updated"]))
    if event.get("summary"):
        comp.add("summary", event["summary"])
    comp.add("status", STATUS.get(event.get("status", "confirmed"), "CONFIRMED"))
    if event.get("transparency") == "transparent":
        comp.add("transp", "TRANSPARENT")
    if event.get("organizer", {}).get("email"):
        comp.add("organizer", _address("organizer", event["organizer"]))
    for person in event.get("attendees") or []:
        if not person.get("email"):
            continue
        addr = _address("attendee", person)
        addr.params["PARTSTAT"] = PARTSTAT.get(person.get("responseStatus", ""), "NEEDS-ACTION")
        if person.get("resource"):
            addr.params["CUTYPE"] = "RESOURCE"
        comp.add("attendee", addr)
    for line in event.get("recurrence") or []:
        name, _, value = line.partition(":")
        prop = icalendar.Event.from_ical(f"BEGIN:VEVENT\r\n{line}\r\nEND:VEVENT\r\n")
        key = name.split(";")[0].upper()
        if key in ("RRULE", "EXRULE", "EXDATE", "RDATE") and value:
            comp.add(key.lower(), prop.get(key), encode=False)
    return comp


def to_ical(event: Mapping[str, Any], uid: str) -> str:
    """A VCALENDAR text with the event's VEVENT."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//syncd//google//EN")
    cal.add("version", "2.0")
    cal.add_component(vevent(event, uid))
    return str(cal.to_ical().decode("utf-8"))


def self_emails(event: Mapping[str, Any]) -> set[str]:
    """Addresses Google marks ``self: true`` in the event."""
    people = [event.get("organizer") or {}, event.get("creator") or {}, *(event.get("attendees") or [])]
    return {str(p["email"]).lower() for p in people if p.get("self") and p.get("email")}


class CalendarSource:
    """Events of the configured calendars, as change batches."""

    def __init__(self, client: Client, account: str) -> None:
        self.client = client
        self.account = account
        self.seen_self: set[str] = set()
        self.stale = False  # a calendar went missing: the cached resolution is out of date

    @property
    def api(self) -> Any:
        return self.client.service("calendar")

    def changes(self, collection: Collection, cursor: str | None, known: Mapping[str, str],
                since: dt.datetime) -> Changes:
        """Batches of one calendar, then its sync token; see the module docstring."""
        if cursor:
            try:
                return (yield from self._list(collection, known, sync_token=cursor))
            except HttpError as exc:
                if status_of(exc) != 410:
                    raise self._error(collection, exc) from exc
                log.info("account %s: calendar %s: sync token expired, full re-list",
                         self.account, collection.name)
            return (yield from self._list(collection, known, full=True))
        # First sync: bound by `since` only when the ledger holds nothing to reconcile.
        time_min = None if known else since
        return (yield from self._list(collection, known, full=True, time_min=time_min))

    def _list(self, collection: Collection, known: Mapping[str, str], *, sync_token: str | None = None,
              full: bool = False, time_min: dt.datetime | None = None) -> Changes:
        params: dict[str, Any] = {"calendarId": collection.id, "singleEvents": False,
                                  "showDeleted": True, "maxResults": PAGE_SIZE}
        if sync_token:
            params["syncToken"] = sync_token
        if time_min is not None:
            params["timeMin"] = time_min.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        masters: dict[str, str] = {}
        listed: set[str] = set()
        pages = self.client.pages(self.api.events().list, f"events of {collection.name}", **params)
        page: dict[str, Any] = {}
        first = True
        while True:
            try:
                page = next(pages)
            except StopIteration:
                break
            except HttpError as exc:
                if status_of(exc) == 410 and sync_token and first:
                    raise  # the caller re-lists
                raise self._error(collection, exc) from exc
            first = False
            items = page.get("items") or []
            listed.update(ev["id"] for ev in items)
            batch = self._batch(collection, items, known, masters, full)
            if batch.upserts or batch.deletes:
                yield batch
        if full:  # the whole calendar: what it no longer lists is gone
            gone = absent(known, listed)
            if gone:
                yield ChangeBatch(deletes=gone)
        return page.get("nextSyncToken")

    def _batch(self, collection: Collection, items: list[dict[str, Any]], known: Mapping[str, str],
               masters: dict[str, str], full: bool) -> ChangeBatch:
        batch = ChangeBatch()
        for ev in items:
            if ev.get("recurrence") and ev.get("iCalUID"):
                masters[ev["id"]] = ev["iCalUID"]
        for ev in items:
            self.seen_self |= self_emails(ev)
            instance = "recurringEventId" in ev and "originalStartTime" in ev
            if ev.get("status") == "cancelled" and not instance:
                batch.deletes.append(ev["id"])
                continue
            if full and known.get(ev["id"]) == ev.get("etag"):
                continue  # unchanged
            uid = self._uid(collection, ev, masters) if instance else ev.get("iCalUID") or ev["id"]
            batch.upserts.append(RawObject(href=ev["id"], etag=ev.get("etag", ""), data=to_ical(ev, uid)))
        return batch

    def _uid(self, collection: Collection, ev: Mapping[str, Any], masters: dict[str, str]) -> str:
        """The master's iCalUID (a cancelled instance does not carry one)."""
        master = ev["recurringEventId"]
        if ev.get("iCalUID"):
            return str(ev["iCalUID"])
        if master not in masters:
            try:
                got = self.client.execute(
                    self.api.events().get(calendarId=collection.id, eventId=master), "event")
                masters[master] = got.get("iCalUID") or master + "@google.com"
            except HttpError:
                masters[master] = master + "@google.com"
        return masters[master]

    def _error(self, collection: Collection, exc: HttpError) -> AccountError:
        self.stale = self.stale or status_of(exc) == 404
        return AccountError(f"account {self.account!r}: calendar {collection.name!r}: "
                            f"HTTP {status_of(exc)}")

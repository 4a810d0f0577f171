"""Google People v1 connections as vCard 3.0 text, and their incremental listing.

Each connection is one ``RawObject`` (href = UID = ``resourceName``, etag = the
person's etag). ``CATEGORIES`` holds the names of the person's contact groups of type
``USER_CONTACT_GROUP``; system groups (``myContacts``, ``starred``...) are not groups.
Group names come from ``contactGroups.list``, cached in the account state
(``contact_groups``) and re-read on full listings or when an unknown group appears.

Sync: ``people.connections.list`` with ``requestSyncToken=True``; the token comes on
the last page. An expired token is HTTP 400 with reason ``EXPIRED_SYNC_TOKEN`` (not
410): one full listing, which names every known contact it no longer lists as deleted.
Deleted contacts come back with ``metadata.deleted`` and become deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import vobject
from googleapiclient.errors import HttpError

from syncd.errors import AccountError
from syncd_connectors.base import ChangeBatch, Changes, Collection, Context, RawObject, absent
from syncd_connectors.google.client import Client, status_of

log = logging.getLogger(__name__)

PERSON_FIELDS = "names,nicknames,emailAddresses,birthdays,events,memberships,metadata"
COLLECTION = Collection(id="people/me/connections", name="Contacts", kind="contacts")
GROUPS_KEY = "contact_groups"


def _date(value: Mapping[str, Any] | None) -> str | None:
    """``YYYY-MM-DD``, or ``--MMDD`` without a year."""
    if not value or not value.get("month") or not value.get("day"):
        return None
    if value.get("year"):
        return f"{int(value['year']):04d}-{int(value['month']):02d}-{int(value['day']):02d}"
    return f"--{int(value['month']):02d}{int(value['day']):02d}"


def to_vcard(person: Mapping[str, Any], groups: Mapping[str, str]) -> str:
    """A vCard 3.0 for one People ``Person``; ``groups``: user group resourceName -> name."""
    card = vobject.vCard()
    card.add("version").value = "3.0"
    card.add("uid").value = person["resourceName"]
    names = person.get("names") or []
    emails = [str(e["value"]) for e in person.get("emailAddresses") or [] if e.get("value")]
    name = names[0] if names else {}
    card.add("fn").value = name.get("displayName") or name.get("unstructuredName") or (emails[0] if emails else "")
    card.add("n").value = vobject.vcard.Name(
        family=name.get("familyName", ""), given=name.get("givenName", ""),
        additional=name.get("middleName", ""), prefix=name.get("honorificPrefix", ""),
        suffix=name.get("honorificSuffix", ""))
    for nick in person.get("nicknames") or []:
        if nick.get("value"):
            card.add("nickname").value = nick["value"]
    for email in emails:
        prop = card.add("email")
        prop.value = email
        prop.type_param = "INTERNET"
    bday = next((d for d in (_date(b.get("date")) for b in person.get("birthdays") or []) if d), None)
    if bday:
        card.add("bday").value = bday
    _add_events(card, person.get("events") or [])
    categories = sorted({groups[g] for g in _group_ids(person) if g in groups})
    if categories:
        card.add("categories").value = categories
    return str(card.serialize())


def _add_events(card: vobject.base.Component, events: list[Mapping[str, Any]]) -> None:
    """Google ``events``: the first ``anniversary`` as ANNIVERSARY; custom types ("Work
    anniversary") as Apple's labelled dates (``itemN.X-ABDATE`` + ``itemN.X-ABLabel``),
    which the vCard reader turns into milestones; ``other`` and untyped dates are skipped."""
    anniversary = False
    n = 0
    for event in events:
        when = _date(event.get("date"))
        kind = str(event.get("type") or "").strip()
        if not when or not kind or kind.lower() == "other":
            continue
        if kind.lower() == "anniversary":
            if not anniversary:
                card.add("anniversary").value = when
                anniversary = True
            continue
        n += 1
        card.add("x-abdate", group=f"item{n}").value = when
        card.add("x-ablabel", group=f"item{n}").value = kind


def _group_ids(person: Mapping[str, Any]) -> list[str]:
    return [m["contactGroupMembership"]["contactGroupResourceName"]
            for m in person.get("memberships") or []
            if (m.get("contactGroupMembership") or {}).get("contactGroupResourceName")]


def is_expired_token(exc: HttpError) -> bool:
    """People's expired sync token: HTTP 400 naming ``EXPIRED_SYNC_TOKEN``."""
    return status_of(exc) == 400 and b"EXPIRED_SYNC_TOKEN" in (exc.content or b"")


class PeopleSource:
    """The account's contacts, as change batches."""

    def __init__(self, client: Client, ctx: Context) -> None:
        self.client = client
        self.ctx = ctx
        self._groups_fresh = False

    @property
    def api(self) -> Any:
        return self.client.service("people")

    def groups(self, refresh: bool = False) -> dict[str, str]:
        """User contact groups, resourceName -> name (cached in state)."""
        cached = self.ctx.state(GROUPS_KEY)
        if cached is not None and not refresh:
            return dict(cached)
        names: dict[str, str] = {}
        for page in self.client.pages(self.api.contactGroups().list, "contact groups", pageSize=1000):
            for group in page.get("contactGroups") or []:
                if group.get("groupType") == "USER_CONTACT_GROUP":
                    names[group["resourceName"]] = group.get("formattedName") or group.get("name", "")
        self.ctx.set_state(GROUPS_KEY, names)
        self._groups_fresh = True
        return names

    def changes(self, cursor: str | None, known: Mapping[str, str]) -> Changes:
        """Batches of the contacts, then the new sync token."""
        if cursor:
            try:
                return (yield from self._list(cursor, known))
            except HttpError as exc:
                if not is_expired_token(exc):
                    raise self._error(exc) from exc
                log.info("account %s: contacts: sync token expired, full re-list", self.ctx.account)
        return (yield from self._list(None, known))

    def _list(self, token: str | None, known: Mapping[str, str]) -> Changes:
        """One listing: incremental from ``token``, or the whole address book (None)."""
        params: dict[str, Any] = {"resourceName": "people/me", "personFields": PERSON_FIELDS,
                                  "pageSize": 1000, "requestSyncToken": True}
        if token:
            params["syncToken"] = token
        pages = self.client.pages(self.api.people().connections().list, "contacts", **params)
        try:
            page = next(pages)
        except StopIteration:
            return None
        except HttpError as exc:
            if token and is_expired_token(exc):
                raise
            raise self._error(exc) from exc
        groups = self.groups(refresh=token is None and not self._groups_fresh)
        listed: set[str] = set()
        while True:
            people = page.get("connections") or []
            listed.update(p["resourceName"] for p in people)
            batch = self._batch(people, groups)
            if batch.upserts or batch.deletes:
                yield batch
            try:
                page = next(pages)
            except StopIteration:
                break
            except HttpError as exc:
                raise self._error(exc) from exc
        if token is None:  # the whole address book: what it no longer lists is gone
            gone = absent(known, listed)
            if gone:
                yield ChangeBatch(deletes=gone)
        return page.get("nextSyncToken")

    def _batch(self, people: list[dict[str, Any]], groups: dict[str, str]) -> ChangeBatch:
        batch = ChangeBatch()
        for person in people:
            if (person.get("metadata") or {}).get("deleted"):
                batch.deletes.append(person["resourceName"])
                continue
            unknown = [g for g in _group_ids(person) if g not in groups and _is_user_group_id(g)]
            if unknown and not self._groups_fresh:
                groups.update(self.groups(refresh=True))
            batch.upserts.append(RawObject(href=person["resourceName"], etag=person.get("etag", ""),
                                           data=to_vcard(person, groups)))
        return batch

    def _error(self, exc: HttpError) -> AccountError:
        return AccountError(f"account {self.ctx.account!r}: contacts: HTTP {status_of(exc)}")


_SYSTEM_GROUPS = {"myContacts", "starred", "friends", "family", "coworkers", "chatBuddies",
                  "all", "blocked"}


def _is_user_group_id(resource: str) -> bool:
    return resource.removeprefix("contactGroups/") not in _SYSTEM_GROUPS

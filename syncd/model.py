"""The data that crosses stages: what connectors' objects say, parsed.

Plain frozen dataclasses made by the parsers (``syncd.events``, ``syncd.vcard``),
stored by the ledger (which owns their encodings) and read by inference.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Party:
    """An organizer or attendee of an event."""

    email: str | None
    name: str | None = None
    partstat: str = ""
    cutype: str = "INDIVIDUAL"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of an event, as read from one calendar.

    ``recurrence_id`` is the original start (UTC, basic format) for recurring events
    and "" for single ones: with ``uid`` it names the meeting across calendars.
    ``order`` is the calendar's position in config order (ties go to the smaller).
    """

    uid: str
    recurrence_id: str
    start: dt.datetime
    all_day: bool = False
    cancelled: bool = False
    summary: str = ""
    organizer: Party | None = None
    attendees: tuple[Party, ...] = ()
    last_modified: dt.datetime | None = None
    order: int = 0
    end: dt.datetime | None = None
    account: str = ""
    calendar: str = ""  # the collection's display name


@dataclass(frozen=True)
class PartialDate:
    """A birthday or anniversary; ``year`` may be unknown (vCard ``--MMDD``)."""

    month: int
    day: int
    year: int | None = None


@dataclass(frozen=True)
class ContactRecord:
    """One address-book entry. ``order`` is its position in config order."""

    name: str | None
    emails: tuple[str, ...] = ()
    nicknames: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    birthday: PartialDate | None = None
    anniversary: PartialDate | None = None
    order: tuple[int, ...] = (0,)
    ref: str = ""  # stable id of the record (``uid:...`` or where it is stored)
    milestones: tuple[Milestone, ...] = ()


@dataclass(frozen=True)
class Milestone:
    """A labelled date of a contact other than birthday and anniversary (SPEC §5)."""

    label: str
    date: PartialDate

"""The data that crosses stages: what connectors' objects say, parsed.

Plain frozen dataclasses made by the parsers (``syncd.events``, ``syncd.vcard``),
stored by the ledger (which owns their encodings) and read by inference; and what
inference makes of them (``Person`` and their ``Meeting``s), read by the rules and views.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class Meeting:
    """A counted occurrence, as kept in a person's history (SPEC §8).

    ``others`` is how many other people rule 5 admitted (a title match has 1), so a
    one-on-one has 1; ``organised`` is whether the user organised it.
    """

    start: dt.datetime
    summary: str
    uid: str
    recurrence_id: str
    end: dt.datetime | None = None
    account: str = ""
    calendar: str = ""
    others: int = 1
    organised: bool = False


@dataclass
class Person:
    """A merged person and their history."""

    key: str
    name: str
    emails: list[str]
    groups: list[str] = field(default_factory=list)
    nicknames: list[str] = field(default_factory=list)
    in_address_book: bool = False
    birthday: PartialDate | None = None
    anniversary: PartialDate | None = None
    milestones: list[Milestone] = field(default_factory=list)
    meetings: list[Meeting] = field(default_factory=list)  # started, sorted
    upcoming: list[Meeting] = field(default_factory=list)  # future, sorted
    refs: list[str] = field(default_factory=list)  # the address-book records merged here
    #: every id that stands for this person (``key`` and ids merged into it); empty
    #: when inference ran without an identity (then ``key`` is the natural key)
    aliases: frozenset[str] = frozenset()
    #: ids of the person this one split off from (their first meeting was followed up)
    origins: frozenset[str] = frozenset()

    @property
    def first_met(self) -> Meeting | None:
        """The first counted meeting."""
        return self.meetings[0] if self.meetings else None

    @property
    def last_met(self) -> Meeting | None:
        """The latest counted meeting."""
        return self.meetings[-1] if self.meetings else None

    @property
    def next_meeting(self) -> Meeting | None:
        """The next future meeting that would count."""
        return self.upcoming[0] if self.upcoming else None

"""Knowing each relationship: SPEC §8's arithmetic as pure functions.

Public API: ``usual_gap``, ``learned_cadence``, ``strength`` (a ``Strength`` with its
three parts and ``words``), ``Learn`` and ``cadence_of`` (where a person's cadence comes
from: their ``[people]`` table, else their shortest group, else learned).

Everything here takes plain data (meetings, dates, settings) and "today", so the
figures depend on nothing else and property tests can drive them directly.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from syncd.config import default
from syncd.model import Meeting, Person

GAP_WINDOW = 730  # days of history the usual gap looks at
GAP_DATES = 12  # at most this many of the latest dates
GAP_MIN_DATES = 4
STRENGTH_WINDOW = 365
HALF_LIFE = 90  # days: recency halves every 90 days
FULL_FREQUENCY = 24  # distinct days a year that count as "as often as it gets"

PERSON, GROUP, LEARNED = "person", "group", "learned"


@functools.lru_cache(maxsize=1 << 12)
def local_date(when: dt.datetime, zone: dt.tzinfo) -> dt.date:
    """The local date of an instant (cached: a person's meetings are asked for again by
    each rule that reads them). Small: the cache holds its instants, and one that held
    every meeting's would take 14 MB at 200,000 events, for as long as the daemon runs."""
    return when.astimezone(zone).date()


def local_dates(meetings: Iterable[Meeting], zone: dt.tzinfo) -> list[dt.date]:
    """The sorted distinct local dates of ``meetings``."""
    return sorted({local_date(m.start, zone) for m in meetings})


def usual_gap(dates: Iterable[dt.date], today: dt.date) -> int | None:
    """The lower median of the day gaps between the last 12 distinct dates of the last
    730 days (up to today); None with fewer than 4 dates."""
    recent = sorted({d for d in dates if 0 <= (today - d).days <= GAP_WINDOW})[-GAP_DATES:]
    if len(recent) < GAP_MIN_DATES:
        return None
    return int(statistics.median_low((b - a).days for a, b in itertools.pairwise(recent)))


def learned_cadence(gap: int, factor: float, least: int, most: int) -> int:
    """``ceil(gap × factor)`` days, kept within ``least``..``most``."""
    return max(least, min(most, math.ceil(gap * factor)))


@dataclass(frozen=True)
class Strength:
    """A tie's strength (0–100) and the three parts it is made of (SPEC §8)."""

    score: int
    recency: float  # R: 0.5 ** (days since last / 90)
    frequency: float  # F: distinct days / 24, at most 1
    one_on_one: float  # O: mean of 1 / others
    days_since: int | None  # None: nothing in the last 365 days
    days_together: int

    @property
    def words(self) -> str:
        """The three parts in words: "last met 12 days ago; 9 days together in the last
        year; mostly one-on-one"."""
        if self.days_since is None:
            return "not met in the last year"
        ago = {0: "today", 1: "yesterday"}.get(self.days_since, f"{self.days_since} days ago")
        days = "1 day" if self.days_together == 1 else f"{self.days_together} days"
        if self.one_on_one >= 0.75:
            size = "mostly one-on-one"
        elif self.one_on_one >= 0.3:
            size = "mostly in small groups"
        else:
            size = "mostly in larger groups"
        return f"last met {ago}; {days} together in the last year; {size}"


def strength(meetings: Sequence[Meeting], today: dt.date, zone: dt.tzinfo,
             days: Sequence[dt.date] | None = None) -> Strength:
    """Strength from the meetings of the last 365 days up to today (SPEC §8).

    ``days``: the meetings' local dates, if the caller has them already.
    """
    if days is None:
        days = [local_date(m.start, zone) for m in meetings]
    pairs = [(d, m) for d, m in zip(days, meetings, strict=True) if 0 <= (today - d).days <= STRENGTH_WINDOW]
    recent = [m for _, m in pairs]
    if not recent:
        return Strength(0, 0.0, 0.0, 0.0, None, 0)
    dates = sorted({d for d, _ in pairs})
    since = (today - dates[-1]).days
    r = 0.5 ** (since / HALF_LIFE)
    f = min(1.0, len(dates) / FULL_FREQUENCY)
    o = sum(1 / max(1, m.others) for m in recent) / len(recent)
    score = math.floor(100 * (0.5 * r + 0.3 * f + 0.2 * o) + 0.5)
    return Strength(max(0, min(100, score)), r, f, o, since, len(dates))


@dataclass(frozen=True)
class Learn:
    """``[rules.keep_in_touch]`` learning: on or off, factor and bounds in days."""

    enabled: bool = default("rules.keep_in_touch.learn")
    factor: float = default("rules.keep_in_touch.learn_factor")
    least: int = default("rules.keep_in_touch.learn_min").days
    most: int = default("rules.keep_in_touch.learn_max").days


@dataclass(frozen=True)
class Cadence:
    """A person's cadence and where it comes from."""

    days: int
    source: str  # PERSON | GROUP | LEARNED
    label: str  # the email of the [people] table, the group, or the usual gap in days
    gap: int | None = None

    @property
    def words(self) -> str:
        """Where the cadence comes from, as a catch-up's reason says it."""
        if self.source == PERSON:
            return f"every {self.days} days, set for {self.label}"
        if self.source == GROUP:
            return f"{self.label} every {self.days} days"
        return f"you usually meet every {self.gap} days"


def person_setting(person: Person, table: Mapping[str, dt.timedelta | None]) -> tuple[str, dt.timedelta | None] | None:
    """The ``[people."EMAIL"]`` entry naming one of the person's addresses (the smallest
    such address wins), with that address; None when there is none."""
    for email in sorted(person.emails):
        if email in table:
            return email, table[email]
    return None


def cadence_of(person: Person, table: Mapping[str, dt.timedelta | None], groups: Mapping[str, dt.timedelta],
               learn: Learn, zone: dt.tzinfo, today: dt.date) -> Cadence | None:
    """P's cadence: their ``[people]`` table, else their shortest group's, else learned
    from their history (SPEC §5, §8). None: no cadence, or ``"off"``. Catch-ups need an
    address-book record, so people without one have none."""
    return choose_cadence(person, table, groups, learn,
                          lambda: usual_gap(local_dates(person.meetings, zone), today))


def choose_cadence(person: Person, table: Mapping[str, dt.timedelta | None], groups: Mapping[str, dt.timedelta],
                   learn: Learn, gap: Callable[[], int | None]) -> Cadence | None:
    """``cadence_of`` with the usual gap given as a function (called only when needed)."""
    if not person.in_address_book:
        return None
    own = person_setting(person, table)
    if own is not None:
        email, every = own
        return None if every is None else Cadence(every.days, PERSON, email)
    found = sorted((c, g) for g, c in groups.items() if g in person.groups)
    if found:
        return Cadence(found[0][0].days, GROUP, found[0][1])
    usual = gap() if learn.enabled else None
    if usual is None:
        return None
    return Cadence(learned_cadence(usual, learn.factor, learn.least, learn.most), LEARNED, str(usual), usual)

"""Which follow-ups should exist: SPEC §5 as a pure function.

Public API: ``plan(people, history, settings, now) -> Plan``, ``due_date``,
``History`` and ``cadence_of`` (a person's cadence and its source, SPEC §8 via
``syncd.relate``). ``history`` is every follow-up syncd ever decided (the ledger's
lifecycle rows), so "one per person, ever", "never again for that cycle" and
``daily_limit`` are decided from data, not from what happens to be in a calendar.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd import relate
from syncd.clock import local_date
from syncd.config import default
from syncd.ledger import FollowupRow
from syncd.model import Milestone, PartialDate, Person

FIRST_MEETING = "first_meeting"
KEEP_IN_TOUCH = "keep_in_touch"
BIRTHDAY = "birthday"
ANNIVERSARY = "anniversary"
MILESTONE = "milestone"


@dataclass(frozen=True)
class RuleSettings:
    """The ``[rules.*]`` tables, plus the zone and horizon they depend on."""

    zone: dt.tzinfo = dt.timezone.utc
    first_meeting: bool = default("rules.first_meeting.enabled")
    due_after: dt.timedelta = default("rules.first_meeting.due_after")
    lookback: dt.timedelta = default("rules.first_meeting.lookback")
    daily_limit: int = default("rules.keep_in_touch.daily_limit")
    cadences: dict[str, dt.timedelta] = field(default_factory=dict)
    birthdays: bool = default("rules.birthday.enabled")
    days_before: int = default("rules.birthday.days_before")
    max_others: int = default("rules.first_meeting.max_others")
    weekly_limit: int | None = default("rules.keep_in_touch.weekly_limit")
    learn: relate.Learn = field(default_factory=relate.Learn)
    people: dict[str, dt.timedelta | None] = field(default_factory=dict)  # [people."EMAIL"] cadence; None: off
    milestones: bool = default("rules.birthday.milestones")


@dataclass(frozen=True)
class Want:
    """A follow-up that should be written."""

    rule: str
    person: str
    name: str
    emails: tuple[str, ...]
    cycle: str
    due: dt.date
    summary: str
    reason: str
    person_due: dt.date | None = None  # keep_in_touch: P's due, which orders the daily limit

    @property
    def key(self) -> str:
        """X-SYNCD-KEY: rule, person and cycle."""
        return f"{self.rule}:{self.person}:{self.cycle}"

    @property
    def uid(self) -> str:
        """The stable UID of this follow-up."""
        return uid_for(self.rule, self.person, self.cycle)


@dataclass
class Plan:
    """What to write and what to resolve."""

    new: list[Want] = field(default_factory=list)
    resolve: list[str] = field(default_factory=list)  # uids of open follow-ups


def uid_for(rule: str, person: str, cycle: str) -> str:
    """A stable, opaque UID (also a safe file name)."""
    digest = hashlib.sha256(f"{rule}\0{person}\0{cycle}".encode()).hexdigest()[:32]
    return f"syncd-{digest}"


def show(day: dt.date) -> str:
    """``3 Aug 2026``: the date format of reasons."""
    return f"{day.day} {day:%b} {day.year}"


def cadence_of(person: Person, s: RuleSettings, today: dt.date,
               gap: Callable[[], int | None] | None = None) -> relate.Cadence | None:
    """P's cadence and its source: ``[people]`` table > shortest group > learned (SPEC §5).
    ``gap``: P's usual gap, when the caller has it already."""
    if gap is None:
        return relate.cadence_of(person, s.people, s.cadences, s.learn, s.zone, today)
    return relate.choose_cadence(person, s.people, s.cadences, s.learn, gap)


class History(Sequence[FollowupRow]):
    """Every follow-up row of the ledger, with each person's found by their ids and
    addresses. The rows of years of closed follow-ups pile up; a plan of everyone
    that read all of them again for each person grew with people times rows."""

    def __init__(self, rows: Iterable[FollowupRow]) -> None:
        self.rows = list(rows)
        self._by_id: dict[str, list[int]] = {}
        self._by_email: dict[str, list[int]] = {}
        for i, r in enumerate(self.rows):
            self._by_id.setdefault(r.person, []).append(i)
            for e in set(r.emails):
                self._by_email.setdefault(e, []).append(i)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Any:
        return self.rows[i]

    def __iter__(self) -> Iterator[FollowupRow]:
        return iter(self.rows)

    def of_ids(self, ids: Iterable[str]) -> list[FollowupRow]:
        """The rows whose person is one of ``ids``, in the ledger's order."""
        return self._rows(i for pid in ids for i in self._by_id.get(pid, ()))

    def of(self, person: Person) -> list[FollowupRow]:
        """P's rows, in the ledger's order. With stable ids (SPEC §4) a follow-up
        belongs to whoever its person id stands for now, whatever addresses they have
        today; without, to P's key or to any of P's addresses."""
        if person.aliases:
            return self.of_ids(person.aliases)
        return self._rows([*self._by_id.get(person.key, ()),
                           *(i for e in set(person.emails) for i in self._by_email.get(e, ()))])

    def _rows(self, found: Iterable[int]) -> list[FollowupRow]:
        return [self.rows[i] for i in sorted(set(found))]


def _history(rows: Sequence[FollowupRow]) -> History:
    return rows if isinstance(rows, History) else History(rows)


def last_contact(person: Person, rows: Sequence[FollowupRow], zone: dt.tzinfo) -> dt.date | None:
    """The later of the last meeting and the last completed catch-up."""
    dates = [local_date(person.last_met.start, zone)] if person.last_met else []
    dates += [
        local_date(r.closed_at, zone)
        for r in rows
        if r.rule == KEEP_IN_TOUCH and r.state == "done" and r.closed_at is not None
    ]
    return max(dates) if dates else None


def _keep_in_touch(person: Person, mine: Sequence[FollowupRow], s: RuleSettings,
                   today: dt.date) -> tuple[relate.Cadence, dt.date | None, dt.date] | None:
    """Cadence, last contact and due of a person's keep-in-touch (None: no cadence)."""
    found = cadence_of(person, s, today)
    if found is None:
        return None
    last = last_contact(person, mine, s.zone)
    return found, last, last + dt.timedelta(days=found.days) if last else today


def due_date(person: Person, rows: Sequence[FollowupRow], settings: RuleSettings, today: dt.date,
             cadence: relate.Cadence | None = None) -> dt.date | None:
    """The person's keep-in-touch due date (SPEC §5), or None without a cadence.
    ``rows``: follow-up rows, P's among them (a ``History`` when asked for many people);
    ``cadence``: P's cadence, when the caller has it already."""
    mine = _history(rows).of(person)
    if cadence is None:
        found = _keep_in_touch(person, mine, settings, today)
        return found[2] if found else None
    last = last_contact(person, mine, settings.zone)
    return last + dt.timedelta(days=cadence.days) if last else today


def next_anniversary(date: PartialDate, today: dt.date) -> dt.date:
    """The next occurrence of a month/day on or after today; 29 Feb -> 28 Feb."""
    for year in (today.year, today.year + 1):
        try:
            day = dt.date(year, date.month, date.day)
        except ValueError:
            day = dt.date(year, date.month, 28)
        if day >= today:
            return day
    raise AssertionError("unreachable")  # pragma: no cover


def _first_meeting(person: Person, rows: list[FollowupRow], history: History, s: RuleSettings,
                   now: dt.datetime) -> Want | None:
    first = person.first_met
    if not s.first_meeting or first is None or now - first.start > s.lookback:
        return None
    if first.others > s.max_others:  # a kickoff with nine new colleagues writes no nine tasks
        return None
    if any(r.rule == FIRST_MEETING for r in rows):
        return None
    if person.origins and any(r.rule == FIRST_MEETING for r in history.of_ids(person.origins)):
        return None  # split off from someone already followed up
    when = first.start.astimezone(s.zone) + s.due_after
    reason = f"first met {show(local_date(first.start, s.zone))}" + (f" ({first.summary})" if first.summary else "")
    return Want(FIRST_MEETING, person.key, person.name, tuple(person.emails), "once", when.date(),
                f"Follow up with {person.name}", reason)


def _catch_up(person: Person, rows: list[FollowupRow], s: RuleSettings, today: dt.date) -> Want | None:
    found = _keep_in_touch(person, rows, s, today)
    if found is None or person.next_meeting is not None:
        return None
    every, last, due = found
    cycle = last.isoformat() if last else "never"
    if due > today or any(r.rule == KEEP_IN_TOUCH and r.cycle == cycle for r in rows):
        return None
    if any(r.rule == KEEP_IN_TOUCH and r.state in ("open", "pending") for r in rows):
        return None  # one is open and still due (an older meeting came to light): no second one
    met = person.last_met
    if last is None:
        why = "never met"
    elif met is not None and local_date(met.start, s.zone) == last:
        why = f"last met {show(last)}" + (f" ({met.summary})" if met.summary else "")
    else:
        why = f"last caught up {show(last)}"
    return Want(KEEP_IN_TOUCH, person.key, person.name, tuple(person.emails), cycle, max(due, today),
                f"Catch up with {person.name}", f"{why}; {every.words}", due)


def _dates(person: Person, rows: list[FollowupRow], s: RuleSettings, today: dt.date) -> list[Want]:
    out = []
    for rule, date in ((BIRTHDAY, person.birthday), (ANNIVERSARY, person.anniversary)):
        if not s.birthdays or date is None or not person.in_address_book:
            continue
        day = next_anniversary(date, today)
        if (day - today).days > s.days_before:
            continue
        cycle = str(day.year)
        if any(r.rule == rule and r.cycle == cycle for r in rows):
            continue
        extra = ""
        if date.year:
            n = day.year - date.year
            extra = f" (turns {n})" if rule == BIRTHDAY else f" ({n} years)"
        out.append(Want(rule, person.key, person.name, tuple(person.emails), cycle, day,
                        f"{person.name}'s {rule} ({day.day} {day:%b})",
                        f"{rule} on {show(day)}{extra}"))
    if s.birthdays and s.milestones and person.in_address_book:
        out.extend(_milestones(person, rows, s, today))
    return out


def _milestone_cycle(year: int, label: str) -> str:
    """One per person, label and year: ``2026:work anniversary``."""
    return f"{year}:{label.casefold()}"


def _milestone(person: Person, cycle: str) -> Milestone | None:
    label = cycle.partition(":")[2]
    return next((m for m in person.milestones if m.label.casefold() == label), None)


def _milestones(person: Person, rows: list[FollowupRow], s: RuleSettings, today: dt.date) -> list[Want]:
    """A person's labelled dates within ``days_before`` (SPEC §5 milestone)."""
    out = []
    for m in person.milestones:
        day = next_anniversary(m.date, today)
        cycle = _milestone_cycle(day.year, m.label)
        if (day - today).days > s.days_before or any(r.rule == MILESTONE and r.cycle == cycle for r in rows):
            continue
        extra = f" ({day.year - m.date.year} years)" if m.date.year and day.year > m.date.year else ""
        out.append(Want(MILESTONE, person.key, person.name, tuple(person.emails), cycle, day,
                        f"{person.name}'s {m.label} ({day.day} {day:%b})", f"{m.label} on {show(day)}{extra}"))
    return out


def _still_wanted(row: FollowupRow, person: Person | None, rows: list[FollowupRow], s: RuleSettings,
                  today: dt.date) -> bool:
    if person is None:
        return False
    if row.rule == FIRST_MEETING:
        return person.first_met is not None
    if row.rule == KEEP_IN_TOUCH:
        found = _keep_in_touch(person, rows, s, today)
        return found is not None and found[2] <= today
    if row.rule == MILESTONE:
        m = _milestone(person, row.cycle)
        if m is None or not (s.birthdays and s.milestones):
            return False
        return next_anniversary(m.date, dt.date(int(row.cycle[:4]), 1, 1)) == row.due or row.due < today
    date = person.birthday if row.rule == BIRTHDAY else person.anniversary
    if date is None or not s.birthdays:
        return False
    return next_anniversary(date, dt.date(int(row.cycle), 1, 1)) == row.due or row.due < today


def week_start(today: dt.date) -> dt.date:
    """The Monday of ``today``'s week: the limits count the follow-ups written since."""
    return today - dt.timedelta(days=today.weekday())


def catch_up_room(history: Iterable[FollowupRow], s: RuleSettings, today: dt.date) -> int:
    """How many catch-ups may still be written today: ``daily_limit`` for the local day
    and ``weekly_limit`` for the local week (Monday to Sunday), whichever is tighter."""
    monday = week_start(today)
    days = [r.written_on for r in history if r.rule == KEEP_IN_TOUCH]
    room = s.daily_limit - sum(1 for d in days if d == today)
    if s.weekly_limit is not None:
        room = min(room, s.weekly_limit - sum(1 for d in days if monday <= d <= today))
    return max(0, room)


def plan(people: Iterable[Person], history: Sequence[FollowupRow], s: RuleSettings, now: dt.datetime,
         kept: frozenset[str] = frozenset()) -> Plan:
    """The follow-ups to write now and the open ones whose reason went away.

    Args:
        people: the result of ``infer.infer``, or the people a change touched. Read
            once, in order: each person is done with before the next (a derivation
            from scratch hands over each one's history only while they are planned).
        history: every follow-up row of the ledger (states already read back), or
            a ``History`` of them; for a few people, those of their ids and origins,
            every open one and every one written since ``week_start`` will do
            (``Ledger.followups_for``).
        s: rule settings.
        now: the current instant; "today" is its date in ``s.zone``.
        kept: ids (and aliases) of people left out of ``people`` because nothing of
            theirs changed since the last plan, today: their follow-ups stay as they
            are. The limits still count everyone's (they are read from ``history``).
    """
    today = local_date(now, s.zone)
    history = _history(history)
    result = Plan()
    catch_ups: list[Want] = []
    wanted: dict[str, bool] = {}  # uid -> still wanted, judged with the first person it belongs to
    merged: list[list[FollowupRow]] = []  # the rows of people who stand for several ids
    for person in people:
        rows = history.of(person)
        for r in rows:
            if r.uid not in wanted:
                wanted[r.uid] = r.state == "open" and _still_wanted(r, person, rows, s, today)
        if len(person.aliases) > 1:
            merged.append(rows)
        first = _first_meeting(person, rows, history, s, now)
        if first:
            result.new.append(first)
        catch = _catch_up(person, rows, s, today)
        if catch:
            catch_ups.append(catch)
        result.new.extend(_dates(person, rows, s, today))
    room = catch_up_room(history, s, today)
    catch_ups.sort(key=lambda w: (w.person_due or w.due, w.name.casefold(), min(w.emails, default="")))
    result.new.extend(catch_ups[:room])
    result.resolve = [r.uid for r in history if r.state == "open" and r.person not in kept
                      and not wanted.get(r.uid, False)]
    result.resolve += _merged_twins(merged, set(result.resolve))
    return result


def _merged_twins(merged: Iterable[list[FollowupRow]], resolved: set[str]) -> list[str]:
    """Open follow-ups that two people had each before they merged into one (SPEC §4):
    the merged person keeps one of each kind (the earliest due), the others are resolved.
    ``merged``: the follow-up rows of each person who stands for several ids.

    A catch-up or a first meeting is one per person whatever its cycle; a dated one
    (birthday, anniversary, milestone) one per cycle.
    """
    out = []
    for mine in merged:
        kinds: dict[tuple[str, str], list[FollowupRow]] = {}
        for r in mine:
            if r.state == "open" and r.uid not in resolved:
                cycle = "" if r.rule in (KEEP_IN_TOUCH, FIRST_MEETING) else r.cycle
                kinds.setdefault((r.rule, cycle), []).append(r)
        for rows in kinds.values():
            keep = min(rows, key=lambda r: (r.due, r.uid))
            out += [r.uid for r in rows if r is not keep]
    return out

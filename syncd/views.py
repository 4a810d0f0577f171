"""What ``syncd people`` and ``syncd person`` show, built in one place (SPEC §2, §8).

Public API: ``summary`` and ``finish`` (one person's stored entry and story, written
after each pass, in two halves), ``person_json`` (the ``person --json`` object),
``task_json``, ``sort_people``, ``find``, ``candidates`` and ``render_person``.

An entry is the ``people --json`` object. A story is the person's upcoming meetings
and the words that explain their cadence and strength; it is stored apart, beside the
interactions (``Ledger.replace_people``), so ``syncd people`` reads neither and
``syncd person`` reads one person's rows and recomputes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from syncd import relate, rules
from syncd.ledger import FollowupRow, Interaction, iso
from syncd.model import Meeting, Person

if TYPE_CHECKING:  # rich loads only to draw: a pass stores snapshots without it
    from rich.console import Console
    from rich.table import Table


def meeting_json(m: Meeting | Interaction) -> dict[str, Any]:
    """One interaction as ``person --json`` shows it."""
    return {"start": iso(m.start), "end": iso(m.end) if m.end else None, "summary": m.summary,
            "account": m.account, "calendar": m.calendar, "others": m.others, "organised": m.organised}


@dataclass
class Summary:
    """What a person's stored entry and story take from their meetings: all of them but
    the keep-in-touch due date, which also depends on the follow-ups (``finish``)."""

    entry: dict[str, Any]  # the ``people --json`` fields but ``due``
    story: dict[str, Any]
    cadence: relate.Cadence | None
    #: the person with their last meeting alone: what the due date reads of them
    person: Person


def summary(p: Person, s: rules.RuleSettings, today: dt.date, shared: dict[int, dt.date] | None = None) -> Summary:
    """What ``p``'s stored entry (the ``people --json`` fields) and story (upcoming
    meetings, the words that explain cadence and strength) take from their meetings.

    Most meetings are shared by several people, so ``shared`` (by ``id`` of the
    meeting, for one pass) finds each one's local date once.
    """
    memo = shared if shared is not None else {}

    def day(m: Meeting) -> dt.date:
        found = memo.get(id(m))
        if found is None:
            found = memo[id(m)] = m.start.astimezone(s.zone).date()
        return found

    days = [day(m) for m in p.meetings]
    gap = relate.usual_gap(days, today)
    found = rules.cadence_of(p, s, today, lambda: gap)
    st = relate.strength(p.meetings, today, s.zone, days)
    entry = {
        "name": p.name,
        "emails": sorted(p.emails),
        "groups": sorted(p.groups),
        "in_address_book": p.in_address_book,
        "interactions": len(p.meetings),
        "first_met": iso(p.first_met.start) if p.first_met else None,
        "last_met": iso(p.last_met.start) if p.last_met else None,
        "next_meeting": iso(p.next_meeting.start) if p.next_meeting else None,
        "cadence_days": found.days if found else None,
        "cadence_source": found.source if found else None,
        "usual_gap_days": gap,
        "strength": st.score,
    }
    story = {"cadence": _cadence_words(p, found, s), "strength": st.words,
             # with the meeting's key: a later pass takes back the ones no change touched
             "upcoming": [{**meeting_json(m), "uid": m.uid, "recurrence_id": m.recurrence_id} for m in p.upcoming]}
    return Summary(entry, story, found, replace(p, meetings=p.meetings[-1:], upcoming=[]))


def finish(sm: Summary, history: Sequence[FollowupRow], s: rules.RuleSettings,
           today: dt.date) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored entry (with its due date, from ``history``) and story of a summary."""
    due = rules.due_date(sm.person, history, s, today, sm.cadence) if sm.cadence else None
    return {**sm.entry, "due": due.isoformat() if due else None}, sm.story


def _cadence_words(p: Person, found: relate.Cadence | None, s: rules.RuleSettings) -> str:
    if found is not None:
        return {relate.PERSON: "set for this person: ", relate.GROUP: "from a group: ",
                relate.LEARNED: "learned: "}[found.source] + found.words
    if not p.in_address_book:
        return "none: catch-ups need an address-book record"
    own = relate.person_setting(p, s.people)
    if own is not None:
        return f'none: cadence is "off" for {own[0]}'
    if s.learn.enabled:
        return "none yet: no group cadence, and fewer than 4 meeting days in two years to learn from"
    return "none: no group cadence, and learning is off"


def task_json(r: FollowupRow) -> dict[str, Any]:
    """One follow-up as ``tasks --json`` shows it."""
    return {"rule": r.rule, "person": r.name, "emails": sorted(r.emails), "due": (r.user_due or r.due).isoformat(),
            "state": "open" if r.state == "pending" else r.state, "account": r.account, "uid": r.uid,
            "reason": r.reason}


def followups_of(ids: frozenset[str], rows: Iterable[FollowupRow]) -> list[FollowupRow]:
    """Every follow-up decided for this person (any id that stands for them), newest due first."""
    mine = [r for r in rows if r.person in ids]
    return sorted(mine, key=lambda r: (r.due, r.rule, r.uid), reverse=True)


def person_json(entry: dict[str, Any], story: dict[str, Any], history: list[dict[str, Any]],
                followups: Iterable[FollowupRow]) -> dict[str, Any]:
    """The ``person --json`` object: the people fields, history (``Ledger.history``),
    upcoming, followups."""
    upcoming = [{k: v for k, v in m.items() if k not in ("uid", "recurrence_id")} for m in story.get("upcoming", [])]
    return {**entry, "history": history, "upcoming": upcoming,
            "followups": [task_json(r) for r in followups]}


def sort_people(people: list[dict[str, Any]], by: str = "name") -> list[dict[str, Any]]:
    """``people --sort``: name; due (soonest first, none last); strength (strongest
    first); last (most recently met first, never met last). Ties go by name."""
    people = sorted(people, key=lambda p: (p["name"].casefold(), p["emails"]))
    if by == "due":
        people.sort(key=lambda p: (p["due"] is None, p["due"] or ""))
    elif by == "strength":
        people.sort(key=lambda p: -int(p.get("strength") or 0))
    elif by == "last":
        people.sort(key=lambda p: p["last_met"] or "", reverse=True)
        people.sort(key=lambda p: p["last_met"] is None)
    return people


def find(people: Sequence[dict[str, Any]], query: str) -> list[dict[str, Any]]:
    """SPEC §2: an email (exact, any case), else part of a name (any case), where a
    whole-name match wins over partial ones."""
    q = query.strip().casefold()
    if not q:
        return []
    by_email = [p for p in people if q.removeprefix("mailto:") in p["emails"]]
    if by_email:
        return by_email
    whole = [p for p in people if p["name"].casefold() == q]
    if whole:
        return whole
    return [p for p in people if q in p["name"].casefold()]


def candidates(people: Sequence[dict[str, Any]]) -> str:
    """The lines listing several matches (for the exit-2 message)."""
    return "\n".join(f"  {p['name']} <{', '.join(p['emails']) or 'no email'}>" for p in sort_people(list(people)))


def _day(value: str | None) -> str:
    return value[:10] if value else "-"


def _meetings_table(title: str, items: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table("date", "summary", "calendar", "others", "organised", title=title, title_justify="left",
                  box=None)
    for m in items:
        table.add_row(_day(m["start"]), m["summary"] or "(no title)", m["calendar"] or "-", str(m["others"]),
                      "you" if m["organised"] else "")
    return table


def render_person(console: Console, data: dict[str, Any], story: dict[str, Any]) -> None:
    """The readable layout of ``syncd person`` (``data`` is the ``person_json`` object)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("emails", ", ".join(data["emails"]) or "-")
    facts.add_row("groups", ", ".join(data["groups"]) or "-")
    facts.add_row("address book", "yes" if data["in_address_book"] else "no (seen in meetings only)")
    facts.add_row("met", f"{data['interactions']} times; first {_day(data['first_met'])}, "
                         f"last {_day(data['last_met'])}")
    facts.add_row("next meeting", _day(data["next_meeting"]))
    gap = data["usual_gap_days"]
    facts.add_row("usual gap", f"{gap} days" if gap is not None else "- (fewer than 4 meeting days)")
    every = f"every {data['cadence_days']} days; " if data["cadence_days"] else ""
    facts.add_row("cadence", every + str(story.get("cadence", "")))
    facts.add_row("due", data["due"] or "-")
    facts.add_row("strength", f"{data['strength']}/100: {story.get('strength', '')}")
    parts: list[Any] = [facts]
    if data["upcoming"]:
        parts += [Text(), _meetings_table("Upcoming", data["upcoming"])]
    parts += [Text(), _meetings_table(f"History ({len(data['history'])}, newest first)", data["history"])
              if data["history"] else Text("History: no counted meetings")]
    if data["followups"]:
        tasks = Table("due", "state", "rule", "reason", title="Follow-ups", title_justify="left", box=None)
        for t in data["followups"]:
            tasks.add_row(t["due"], t["state"], t["rule"], t["reason"])
        parts += [Text(), tasks]
    else:
        parts += [Text(), Text("Follow-ups: none decided")]
    console.print(Panel(Group(*parts), title=Text(data["name"], style="bold"), title_align="left", expand=False))

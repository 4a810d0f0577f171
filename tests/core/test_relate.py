"""Properties of SPEC §8 (``syncd.relate``), of ``[inference] ignore`` and of ``weekly_limit``.

In-process, for all generated inputs: (a) strength lies in 0..100 and never falls when
a one-on-one is added today; (b) its recency part never rises as days pass without a
meeting; (c) a learned cadence lies within learn_min..learn_max; (d) an ignored address
never appears in people and changes no one's counts except by its absence; (e) over any
sequence of simulated days, no local week gets more than ``weekly_limit`` catch-ups and
no day more than ``daily_limit``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import zoneinfo
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import infer, relate, rules
from syncd.infer import ContactRecord, Meeting, Occurrence, Person
from syncd.ledger import FollowupRow
from tests.core.test_properties import ME, NOW, normal, occurrence, options

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc
TODAY = dt.date(2026, 6, 15)
SETTINGS = settings(max_examples=80, deadline=None)


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), BERLIN).astimezone(UTC)


@st.composite
def meetings(draw: Any, max_days_ago: int = 900) -> list[Meeting]:
    out = []
    for i in range(draw(st.integers(0, 30))):
        day = TODAY - dt.timedelta(days=draw(st.integers(0, max_days_ago)))
        out.append(Meeting(at(day, draw(st.integers(0, 11))), "m", f"u{i}", "", others=draw(st.integers(1, 12))))
    return sorted(out, key=lambda m: m.start)


# -- (a) strength bounded, and a one-on-one today never lowers it --------------------------
@SETTINGS
@given(meetings())
def test_a_strength_in_range_and_a_one_on_one_today_never_lowers_it(ms: list[Meeting]) -> None:
    before = relate.strength(ms, TODAY, BERLIN)
    assert 0 <= before.score <= 100
    after = relate.strength([*ms, Meeting(at(TODAY, 9), "1:1", "new", "", others=1)], TODAY, BERLIN)
    assert 0 <= after.score <= 100
    assert after.score >= before.score
    assert after.days_since == 0 and after.recency == 1.0


def test_strength_formula_by_hand() -> None:
    # last met 90 days ago (R = 0.5), 6 distinct days (F = 0.25), all 1:1 (O = 1)
    ms = [Meeting(at(TODAY - dt.timedelta(days=90 + 7 * i)), "m", f"u{i}", "") for i in range(6)]
    s = relate.strength(ms, TODAY, BERLIN)
    assert s.score == int(100 * (0.5 * 0.5 + 0.3 * 0.25 + 0.2 * 1) + 0.5)
    assert s.words == "last met 90 days ago; 6 days together in the last year; mostly one-on-one"
    assert relate.strength([], TODAY, BERLIN).score == 0


# -- (b) recency never rises as days pass ----------------------------------------------------
@SETTINGS
@given(meetings(), st.integers(1, 400))
def test_b_recency_never_rises_as_days_pass(ms: list[Meeting], days: int) -> None:
    previous = relate.strength(ms, TODAY, BERLIN).recency
    for step in range(1, days + 1, max(1, days // 40)):
        now = relate.strength(ms, TODAY + dt.timedelta(days=step), BERLIN).recency
        assert now <= previous
        previous = now


# -- (c) learned cadence within bounds ---------------------------------------------------------
@SETTINGS
@given(meetings(max_days_ago=800), st.floats(0.1, 10), st.integers(1, 400), st.integers(0, 400))
def test_c_learned_cadence_within_bounds(ms: list[Meeting], factor: float, least: int, extra: int) -> None:
    most = least + extra
    person = Person("ana@example.org", "Ana", ["ana@example.org"], in_address_book=True, meetings=ms)
    found = relate.cadence_of(person, {}, {}, relate.Learn(True, factor, least, most), BERLIN, TODAY)
    gap = relate.usual_gap(relate.local_dates(ms, BERLIN), TODAY)
    if gap is None:
        assert found is None
    else:
        assert found is not None and found.source == relate.LEARNED
        assert least <= found.days <= most
        assert found.words == f"you usually meet every {gap} days"


def test_usual_gap_is_the_lower_median_of_the_last_twelve_dates() -> None:
    days = [TODAY - dt.timedelta(days=d) for d in (0, 9, 18, 20, 40)]
    assert relate.usual_gap(days, TODAY) == 9  # gaps 20, 2, 9, 9 -> median_low 9
    assert relate.usual_gap(days[:3], TODAY) is None
    assert relate.usual_gap([TODAY - dt.timedelta(days=800), *days[:3]], TODAY) is None  # outside 730 days


def test_cadence_precedence_person_then_group_then_learned() -> None:
    ms = [Meeting(at(TODAY - dt.timedelta(days=10 * i)), "m", f"u{i}", "") for i in range(5)]
    p = Person("ana@example.org", "Ana", ["ana@example.org", "ana@work.example"], groups=["Friends"],
               in_address_book=True, meetings=ms)
    learn = relate.Learn()
    groups = {"Friends": dt.timedelta(days=30), "Family": dt.timedelta(days=14)}
    own = {"ana@work.example": dt.timedelta(days=21)}
    assert relate.cadence_of(p, own, groups, learn, BERLIN, TODAY) == relate.Cadence(21, "person", "ana@work.example")
    assert relate.cadence_of(p, {"ana@example.org": None}, groups, learn, BERLIN, TODAY) is None
    assert relate.cadence_of(p, {}, groups, learn, BERLIN, TODAY) == relate.Cadence(30, "group", "Friends")
    learned = relate.cadence_of(p, {}, {}, learn, BERLIN, TODAY)
    assert learned is not None and (learned.days, learned.source, learned.gap) == (20, "learned", 10)
    assert relate.cadence_of(p, {}, {}, relate.Learn(enabled=False), BERLIN, TODAY) is None
    stranger = dataclasses.replace(p, in_address_book=False)
    assert relate.cadence_of(stranger, own, groups, learn, BERLIN, TODAY) is None


# -- (d) ignore ---------------------------------------------------------------------------------
BOT = "scheduler@noreply.example.org"
GLOBS = ("*@NOREPLY.example.org", "cy@*")


def _ignored(email: str | None) -> bool:
    return bool(email) and any(fnmatch.fnmatchcase(str(email).lower(), g.lower()) for g in GLOBS)


def _without(occ: Occurrence) -> Occurrence:
    org = occ.organizer if occ.organizer is None or not _ignored(occ.organizer.email) else None
    return dataclasses.replace(occ, organizer=org, attendees=tuple(a for a in occ.attendees if not _ignored(a.email)))


@st.composite
def bot_worlds(draw: Any) -> tuple[list[Occurrence], list[ContactRecord]]:
    occs = []
    for i in range(draw(st.integers(0, 6))):
        occ = draw(occurrence(f"ev{i}"))
        if draw(st.booleans()):  # the bot sits on this meeting
            bot = infer.Party(BOT, "Scheduling Bot")
            occ = (dataclasses.replace(occ, organizer=bot) if draw(st.booleans())
                   else dataclasses.replace(occ, attendees=(*occ.attendees, bot)))
        occs.append(occ)
    recs = []
    for i in range(draw(st.integers(0, 4))):
        pool = ["ann@example.com", "bob@example.com", "cy@example.net", BOT]
        emails = tuple(sorted(set(draw(st.lists(st.sampled_from(pool), max_size=2)))))
        recs.append(ContactRecord(draw(st.sampled_from(["Ann Lee", "Bob Ray", "Cy", None])), emails,
                                  groups=("Friends",), order=(0, f"c{i}.vcf", 0)))
    return occs, recs


@SETTINGS
@given(bot_worlds(), options)
def test_d_ignored_addresses_are_absent(world: Any, s: infer.Settings) -> None:
    occs, recs = world
    with_ignore = infer.infer(occs, recs, [ME], dataclasses.replace(s, ignore=GLOBS), NOW)
    stripped_recs = []
    for r in recs:
        kept = tuple(e for e in r.emails if not _ignored(e))
        if kept or not r.emails:
            stripped_recs.append(dataclasses.replace(r, emails=kept))
    absent = infer.infer([_without(o) for o in occs], stripped_recs, [ME], s, NOW)
    assert not any(_ignored(e) for p in with_ignore for e in p.emails)
    assert normal(with_ignore) == normal(absent)


# -- (e) weekly and daily limits over simulated days ---------------------------------------
@SETTINGS
@given(st.integers(0, 4), st.none() | st.integers(0, 6), st.integers(1, 12), st.integers(1, 30),
       st.lists(st.integers(0, 3), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_e_limits_never_exceeded(daily: int, weekly: int | None, n_people: int, cadence_days: int,
                                 passes: list[int], rnd: Any) -> None:
    s = rules.RuleSettings(zone=BERLIN, daily_limit=daily, weekly_limit=weekly,
                           cadences={"Friends": dt.timedelta(days=cadence_days)})
    people = [Person(f"p{i}@example.org", f"P{i}", [f"p{i}@example.org"], groups=["Friends"], in_address_book=True)
              for i in range(n_people)]
    history: list[FollowupRow] = []
    start = dt.date(2026, 6, 10)  # a Wednesday: the first week is a partial one
    for day_no, n_passes in enumerate(passes):
        today = start + dt.timedelta(days=day_no)
        for _ in range(n_passes):
            for want in rules.plan(people, history, s, at(today, 10)).new:
                history.append(FollowupRow(want.uid, want.rule, want.key, want.person, want.name,
                                           list(want.emails), want.cycle, want.due, want.summary, want.reason,
                                           "files", "open", today))
        for row in history:  # the user completes some catch-ups, so new cycles come due
            if row.state == "open" and rnd.random() < 0.3:
                row.state, row.closed_at = "done", at(today, 18)
    per_day: dict[dt.date, int] = {}
    per_week: dict[dt.date, int] = {}
    for row in history:
        per_day[row.written_on] = per_day.get(row.written_on, 0) + 1
        monday = row.written_on - dt.timedelta(days=row.written_on.weekday())
        per_week[monday] = per_week.get(monday, 0) + 1
    assert all(n <= daily for n in per_day.values())
    if weekly is not None:
        assert all(n <= weekly for n in per_week.values())

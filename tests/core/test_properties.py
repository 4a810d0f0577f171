"""Properties of the inference (SPEC §4) over small generated worlds, and of recurrence.

In-process, on ``infer.infer`` and on ``events.split`` + ``events.expand``:
(a) a meeting the user declined changes no one's count; (b) a series and the same
series written out as explicit overrides count the same; (c) a copy of an event in a
second calendar counts once; (d) input order does not matter; (e) a weekly local-time
series keeps its local time across the DST switches; (f) a series expands to what
the recurrence library's own copies of its components say; (g) meetings set aside on
disk (a derivation from scratch) come back as they were attached.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import zoneinfo
from typing import Any

import icalendar
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import events, infer
from syncd.aside import Aside
from syncd.infer import ContactRecord, Occurrence, Party

ME = "me@example.org"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BASE = dt.datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
EMAILS = ["ann@example.com", "bob@example.com", "cy@example.net", "dee@example.net", "eve@example.com"]
NAMES = ["Ann Lee", "Bob Ray", "Cy", "Dee Dee", "Ann Lee", None]
PARTSTATS = ["", "ACCEPTED", "TENTATIVE", "NEEDS-ACTION", "DECLINED"]
CUTYPES = ["INDIVIDUAL", "INDIVIDUAL", "INDIVIDUAL", "ROOM", "RESOURCE", "GROUP"]
SETTINGS = settings(max_examples=60, deadline=None)

# -- strategies ---------------------------------------------------------------------
party = st.builds(
    Party,
    email=st.sampled_from([*EMAILS, "stranger@example.org", ME.upper(), None]).map(lambda e: e and e.lower()),
    name=st.sampled_from(NAMES),
    partstat=st.sampled_from(PARTSTATS),
    cutype=st.sampled_from(CUTYPES),
)
options = st.builds(
    infer.Settings,
    max_attendees=st.integers(1, 5),
    count_all_day=st.booleans(),
    match_titles=st.booleans(),
    track_unknown=st.booleans(),
)


@st.composite
def occurrence(draw: Any, uid: str, order: int = 0) -> Occurrence:
    hours = draw(st.integers(-24 * 400, 24 * 60))  # mostly past, some upcoming
    return Occurrence(
        uid=uid,
        recurrence_id=draw(st.sampled_from(["", "20260105T090000Z"])),
        start=BASE + dt.timedelta(hours=hours),
        all_day=draw(st.booleans()),
        cancelled=draw(st.integers(0, 5)) == 0,
        summary=draw(st.sampled_from(["Sync", "Lunch with Ann Lee", "Call cy", "Bob Ray / Dee Dee", ""])),
        organizer=draw(st.none() | party),
        attendees=tuple(draw(st.lists(party, max_size=5))),
        last_modified=draw(st.none() | st.sampled_from([BASE, BASE + dt.timedelta(days=1)])),
        order=order,
    )


@st.composite
def contacts(draw: Any) -> list[ContactRecord]:
    out = []
    for i in range(draw(st.integers(0, 4))):
        out.append(ContactRecord(
            name=draw(st.sampled_from(NAMES)),
            emails=tuple(sorted(set(draw(st.lists(st.sampled_from(EMAILS), max_size=2))))),
            nicknames=tuple(draw(st.lists(st.sampled_from(["Cy", "Bobby"]), max_size=1))),
            groups=tuple(sorted(set(draw(st.lists(st.sampled_from(["Family", "Friends"]), max_size=2))))),
            order=(0, f"c{i}.vcf", 0),
        ))
    return out


@st.composite
def worlds(draw: Any) -> tuple[list[Occurrence], list[ContactRecord]]:
    n = draw(st.integers(0, 6))
    return [draw(occurrence(f"ev{i}")) for i in range(n)], draw(contacts())


def run(occs: list[Occurrence], recs: list[ContactRecord], s: infer.Settings) -> list[infer.Person]:
    return infer.infer(occs, recs, [ME], s, NOW, until=NOW + dt.timedelta(days=60))


def normal(people: list[infer.Person]) -> list[tuple[Any, ...]]:
    """What must not depend on input order or duplicates."""
    return sorted(
        (p.name, tuple(p.emails), tuple(p.groups), len(p.meetings),
         p.first_met.start if p.first_met else None, p.last_met.start if p.last_met else None,
         len(p.upcoming))
        for p in people
    )


def counts(people: list[infer.Person]) -> dict[str, int]:
    return {p.key: len(p.meetings) for p in people if p.meetings}


# -- (a) declined ---------------------------------------------------------------------
@SETTINGS
@given(worlds(), options, occurrence("declined"), st.sampled_from(["", "organizer"]))
def test_a_declined_meeting_changes_no_count(world: Any, s: infer.Settings, extra: Occurrence, where: str) -> None:
    occs, recs = world
    me = Party(ME, "Me", "DECLINED")
    if where == "organizer":
        declined = dataclasses.replace(extra, organizer=me)
    else:
        declined = dataclasses.replace(extra, attendees=(*extra.attendees, me))
    assert counts(run(occs, recs, s)) == counts(run([*occs, declined], recs, s))


# -- (c) a copy in a second calendar ------------------------------------------------
@SETTINGS
@given(worlds(), options, st.data())
def test_c_a_copy_in_another_calendar_counts_once(world: Any, s: infer.Settings, data: Any) -> None:
    occs, recs = world
    copied = data.draw(st.lists(st.sampled_from(occs), unique_by=lambda o: o.uid)) if occs else []
    copies = [dataclasses.replace(o, order=1) for o in copied]
    assert normal(run(occs, recs, s)) == normal(run([*occs, *copies], recs, s))
    assert normal(run(occs, recs, s)) == normal(run([*copies, *occs], recs, s))


# -- (d) input order --------------------------------------------------------------------
@SETTINGS
@given(worlds(), options, st.data())
def test_d_input_order_does_not_matter(world: Any, s: infer.Settings, data: Any) -> None:
    occs, recs = world
    # a second calendar holding differing copies of some events: the tie-breaks must not
    # depend on order either
    others = [data.draw(occurrence(o.uid, order=1)) for o in occs[: data.draw(st.integers(0, len(occs)))]]
    allocc = occs + others
    shuffled = data.draw(st.permutations(allocc)), data.draw(st.permutations(recs))
    assert normal(run(allocc, recs, s)) == normal(run(list(shuffled[0]), list(shuffled[1]), s))


# -- (b) a series vs. the same series as explicit overrides ----------------------------
def _cal(vevents: list[list[str]]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd tests//EN"]
    for v in vevents:
        lines += ["BEGIN:VEVENT", *v, "END:VEVENT"]
    return "\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n"


def _people_lines(attendees: list[tuple[str, str, str]], organizer: str | None) -> list[str]:
    lines = [f"ORGANIZER:mailto:{organizer}"] if organizer else []
    return lines + [f"ATTENDEE;PARTSTAT={ps};CUTYPE={cu}:mailto:{e}" for e, ps, cu in attendees]


def _expand(text: str, start: dt.datetime, end: dt.datetime) -> list[Occurrence]:
    parsed = events.split(text)
    assert not parsed.problems, parsed.problems
    out = []
    for uid, comps in parsed.by_uid.items():
        occs, _ = events.expand(uid, comps, parsed.timezones, start, end, BERLIN)
        out += occs
    return out


series = st.fixed_dictionaries({
    "freq": st.sampled_from(["DAILY", "WEEKLY"]),
    "count": st.integers(1, 12),
    "day": st.integers(0, 500),
    "hour": st.integers(0, 23),
    "exdate": st.none() | st.integers(0, 11),
    "attendees": st.lists(st.tuples(st.sampled_from([*EMAILS, ME]), st.sampled_from(PARTSTATS),
                                    st.sampled_from(CUTYPES)), max_size=4, unique_by=lambda t: t[0]),
    "organizer": st.sampled_from([None, ME, EMAILS[0]]),
    "all_day": st.integers(0, 5).map(lambda n: n == 0),
})


@SETTINGS
@given(series, options, contacts())
def test_b_series_equals_explicit_overrides(sr: dict[str, Any], s: infer.Settings, recs: list[ContactRecord]) -> None:
    first = dt.datetime(2025, 3, 1, sr["hour"]) + dt.timedelta(days=sr["day"])
    step = dt.timedelta(days=1 if sr["freq"] == "DAILY" else 7)
    instances = [first + i * step for i in range(sr["count"])]
    if sr["all_day"]:
        def fmt(d: dt.datetime) -> str:
            return f";VALUE=DATE:{d:%Y%m%d}"
    else:
        def fmt(d: dt.datetime) -> str:
            return f";TZID=Europe/Berlin:{d:%Y%m%dT%H%M%S}"
    rule = [f"RRULE:FREQ={sr['freq']};COUNT={sr['count']}"]
    if sr["exdate"] is not None and sr["exdate"] < sr["count"]:
        rule.append(f"EXDATE{fmt(instances[sr['exdate']])}")
        instances.pop(sr["exdate"])
    who = _people_lines(sr["attendees"], sr["organizer"])
    head = ["UID:series@example.org", "DTSTAMP:20250101T000000Z", "SUMMARY:Weekly with Ann Lee"]
    master = [*head, f"DTSTART{fmt(first)}", *rule, *who]
    overrides = [[*head, f"RECURRENCE-ID{fmt(d)}", f"DTSTART{fmt(d)}", *who] for d in instances]
    window = (dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2030, 1, 1, tzinfo=UTC))
    plain = _expand(_cal([master]), *window)
    explicit = _expand(_cal([master, *overrides]), *window)
    assert sorted(o.start for o in plain) == sorted(o.start for o in explicit)
    assert len(plain) == len(instances)
    assert sorted(o.recurrence_id for o in plain) == sorted(o.recurrence_id for o in explicit)
    assert normal(run(plain, recs, s)) == normal(run(explicit, recs, s))


# -- (e) DST -------------------------------------------------------------------------------
@SETTINGS
@given(st.dates(dt.date(2021, 1, 1), dt.date(2028, 1, 1)), st.integers(36, 60))
def test_e_weekly_local_time_survives_dst(day: dt.date, count: int) -> None:
    text = _cal([["UID:dst@example.org", "DTSTAMP:20250101T000000Z", "SUMMARY:Standup",
                  f"DTSTART;TZID=Europe/Berlin:{day:%Y%m%d}T100000", f"DTEND;TZID=Europe/Berlin:{day:%Y%m%d}T103000",
                  f"RRULE:FREQ=WEEKLY;COUNT={count}", f"ATTENDEE:mailto:{EMAILS[0]}"]])
    occs = _expand(text, dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert len(occs) == count
    local = [o.start.astimezone(BERLIN) for o in sorted(occs, key=lambda o: o.start)]
    assert all((t.hour, t.minute) == (10, 0) for t in local), local
    days = [t.date() for t in local]
    assert all(b - a == dt.timedelta(days=7) for a, b in itertools.pairwise(days))
    # 35+ weeks always span a switch: both offsets occur, so UTC hours differ
    assert {o.start.hour for o in occs} == {8, 9}


# -- (f) a series' occurrences are those of the library's own copies -----------------------
_FORMS = {
    "berlin": lambda d: f";TZID=Europe/Berlin:{d:%Y%m%dT%H%M%S}",
    "utc": lambda d: f":{d:%Y%m%dT%H%M%S}Z",
    "floating": lambda d: f":{d:%Y%m%dT%H%M%S}",
    "date": lambda d: f";VALUE=DATE:{d:%Y%m%d}",
}


@st.composite
def _series(draw: Any) -> tuple[str, list[list[str]]]:
    form = draw(st.sampled_from(sorted(_FORMS)))
    fmt = _FORMS[form]
    freq, days = draw(st.sampled_from([("DAILY", 1), ("WEEKLY", 7), ("MONTHLY", 30)]))
    count, interval = draw(st.integers(1, 25)), draw(st.integers(1, 3))
    first = dt.datetime(2025, 1, 1, 9) + dt.timedelta(days=draw(st.integers(0, 400)), hours=draw(st.integers(0, 12)))
    step = dt.timedelta(days=days * interval)
    length = draw(st.sampled_from(["end", "duration", "none"]))
    who = _people_lines(draw(st.lists(st.tuples(st.sampled_from(EMAILS), st.sampled_from(PARTSTATS),
                                                st.sampled_from(CUTYPES)), max_size=3, unique_by=lambda t: t[0])),
                        draw(st.sampled_from([None, ME, EMAILS[0]])))
    head = ["UID:f@example.org", "DTSTAMP:20250101T000000Z"]
    master = [*head, "SUMMARY:Series", f"DTSTART{fmt(first)}", *who,
              f"RRULE:FREQ={freq};INTERVAL={interval};COUNT={count}"]
    if length == "end":
        master.append(f"DTEND{fmt(first + (dt.timedelta(days=1) if form == 'date' else dt.timedelta(minutes=45)))}")
    elif length == "duration":
        master.append("DURATION:P1D" if form == "date" else "DURATION:PT30M")
    for k in draw(st.lists(st.integers(0, count - 1), max_size=3, unique=True)):
        master.append(f"EXDATE{fmt(first + k * step)}")
    if draw(st.booleans()):
        master.append(f"RDATE{fmt(first + count * step + dt.timedelta(days=2))}")
    vevents = [master]
    for k in draw(st.lists(st.integers(0, count - 1), max_size=3, unique=True)):
        moved = first + k * step + dt.timedelta(days=draw(st.integers(-1, 1)), hours=draw(st.integers(0, 2)))
        future = ";RANGE=THISANDFUTURE" if draw(st.integers(0, 3)) == 0 else ""
        status = ["STATUS:CANCELLED"] if draw(st.integers(0, 3)) == 0 else []
        vevents.append([*head, f"SUMMARY:Moved {k}", f"RECURRENCE-ID{future}{fmt(first + k * step)}",
                        f"DTSTART{fmt(moved)}", f"ATTENDEE:mailto:{EMAILS[k % len(EMAILS)]}", *status,
                        f"LAST-MODIFIED:2025{1 + k % 12:02d}01T000000Z"])
    return form, vevents


@SETTINGS
@given(_series())
def test_f_a_series_expands_as_the_library_copies_it(drawn: tuple[str, list[list[str]]]) -> None:
    """``expand`` reads each occurrence without the copy of its component that the
    library makes; what it reads must be what that copy says."""
    import recurring_ical_events

    _, vevents = drawn
    text = _cal(vevents)
    lo, hi = dt.datetime(2024, 6, 1, tzinfo=UTC), dt.datetime(2028, 1, 1, tzinfo=UTC)
    parsed = events.split(text)
    assert not parsed.problems, parsed.problems
    occs, recurring = events.expand("f@example.org", parsed.by_uid["f@example.org"], parsed.timezones, lo, hi, BERLIN)
    assert recurring
    copies = recurring_ical_events.of(icalendar.Calendar.from_ical(text)).between(lo, hi)
    want = [events._occurrence(c, "f@example.org", BERLIN, True, 0) for c in copies]
    want = sorted((o for o in want if lo <= o.start < hi), key=lambda o: (o.start, o.recurrence_id))
    assert occs == want


# -- (g) meetings set aside ----------------------------------------------------------
@st.composite
def crowded(draw: Any) -> list[Occurrence]:
    """Meetings that count, with few UIDs and few start times, in several zones, with
    and without an end: they tie on start, or on start and UID, and must keep their order."""
    out = []
    for i in range(draw(st.integers(0, 16))):
        start = BASE + dt.timedelta(minutes=draw(st.sampled_from([0, 30, 90])) - 60 * 24 * draw(st.integers(0, 3)),
                                    microseconds=draw(st.sampled_from([0, 1, 999_999])))
        zone = draw(st.sampled_from([UTC, BERLIN, zoneinfo.ZoneInfo("America/St_Johns")]))
        end = draw(st.none() | st.just(start + dt.timedelta(minutes=45)))
        guests = draw(st.lists(st.sampled_from(EMAILS[:3]), min_size=1, max_size=2, unique=True))
        out.append(Occurrence(uid=draw(st.sampled_from(["a", "b", "c"])), recurrence_id=f"r{i % 5}",
                              start=start.astimezone(zone), end=end, order=draw(st.integers(0, 1)),
                              summary=draw(st.sampled_from(["", "Tee mit Ann 🫖", "Sync"])),
                              organizer=draw(st.sampled_from([None, Party(ME), Party(EMAILS[0])])),
                              attendees=tuple(Party(e, partstat="ACCEPTED") for e in guests)))
    return out


@SETTINGS
@given(crowded(), contacts(), options.map(lambda s: dataclasses.replace(s, max_attendees=5)))
def test_g_meetings_set_aside_come_back_as_attached(occs: list[Occurrence], recs: list[ContactRecord],
                                                     s: infer.Settings) -> None:
    until = NOW + dt.timedelta(days=60)
    # a UID at a time, as a derivation from scratch streams them: not in time order
    stream = [o for _, same in itertools.groupby(sorted(occs, key=lambda o: o.uid), key=lambda o: o.uid)
              for o in infer.dedupe(same)]
    held, _ = infer.Directory(recs, {ME}, s).attach(stream, NOW, until, deduped=True)
    aside = Aside()
    try:
        light, _ = infer.Directory(recs, {ME}, s).attach(stream, NOW, until, deduped=True, aside=aside)
        assert [(p.key, p.name, p.upcoming) for p in light] == [(p.key, p.name, p.upcoming) for p in held]
        assert all(not p.meetings for p in light)
        for p, q in zip(light, held, strict=True):
            assert aside.meetings(p) == q.meetings
    finally:
        aside.close()

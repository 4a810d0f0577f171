"""iCalendar objects to occurrences: parsing, time zones and recurrence.

Public API: ``decode``, ``split``, ``expand``, and ``rebuildable`` and ``text_of`` (the
text of a plain single meeting, rebuilt from its occurrence). Recurrence expansion is the
recurring-ical-events library's (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides); this
module only groups components by UID, bounds it (from the window, not from DTSTART;
at most ``MAX_PER_SERIES`` occurrences and about ``SERIES_SECONDS`` per series, the
latest kept, SPEC §6), and turns each occurrence into an ``infer.Occurrence``. A
component that cannot be read is skipped and reported; its siblings are still read.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import icalendar

from syncd.errors import ParseError
from syncd.infer import Occurrence, Party

log = logging.getLogger(__name__)

#: a series yielding more than this inside the window is cut (FREQ=SECONDLY and friends)
MAX_PER_SERIES = 5000
_BLOCK = re.compile(r"^BEGIN:(VEVENT|VTIMEZONE)\r?$.*?^END:\1\r?$", re.M | re.S | re.I)
_NOISE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def decode(raw: bytes) -> str:
    """Bytes of a file to text: UTF-8 (BOM stripped), else Windows-1252/Latin-1."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        # Folding may split a multi-byte character; unfolding first changes no meaning.
        return re.sub(rb"\r?\n[ \t]", b"", raw).decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


@dataclass
class Parsed:
    """The components of one object: VEVENTs by UID, plus its VTIMEZONEs."""

    by_uid: dict[str, list[icalendar.cal.Component]]
    timezones: list[icalendar.cal.Component]
    problems: list[str]


def _clean(text: str) -> str:
    # Lone CRs and control characters make whole files unreadable; they carry no data.
    text = text.replace("\r\r\n", "\r\n")
    text = re.sub(r"\r(?!\n)", "\n", text)
    return _NOISE.sub("", text)


_BEGIN_EVENT = re.compile(r"^BEGIN:VEVENT\r?$", re.M | re.I)


def _components(text: str) -> tuple[list[icalendar.cal.Component], list[str]]:
    expected = len(_BEGIN_EVENT.findall(text))
    whole_error = "unreadable calendar"
    try:
        cals = icalendar.Calendar.from_ical(text, multiple=True)
        comps = [c for cal in cals for c in cal.walk() if c.name in ("VEVENT", "VTIMEZONE")]
        # A file truncated inside a component parses as nothing, silently: count.
        if sum(c.name == "VEVENT" for c in comps) >= expected:
            return comps, []
    except Exception as exc:
        whole_error = f"{type(exc).__name__}: {exc}"
    # The file as a whole is broken: read each block on its own so siblings survive.
    comps, problems = [], []
    for m in _BLOCK.finditer(text):
        try:
            comps.append(icalendar.cal.Component.from_ical(m.group(0)))
        except Exception as exc:
            uid = re.search(r"^UID:(.*)$", m.group(0), re.M)
            problems.append(f"{'UID ' + uid.group(1).strip() if uid else m.group(1)}: {type(exc).__name__}: {exc}")
    missing = expected - sum(c.name == "VEVENT" for c in comps) - len(problems)
    if missing > 0:
        problems.append(f"{missing} VEVENT(s) not terminated (truncated file?)")
    if not comps and not problems and "BEGIN:V" in text.upper():
        problems.append(whole_error)
    return comps, problems


def split(text: str) -> Parsed:
    """Parse one calendar object (lenient: broken components are listed, not raised)."""
    comps, problems = _components(_clean(text))
    by_uid: dict[str, list[icalendar.cal.Component]] = {}
    tzs = []
    for comp in comps:
        if comp.name == "VTIMEZONE":
            tzs.append(comp)
            continue
        errors = getattr(comp, "errors", None)
        uid = str(comp.get("uid", "")).strip()
        if errors:
            problems.append(f"UID {uid or '(none)'}: {errors[0][0]}: {errors[0][1]}")
            continue
        if not uid:
            # RFC 5545 requires a UID; without one the component is its own series.
            uid = f"(no uid) {comp.get('dtstart', '')!s}{comp.get('summary', '')!s}"
        by_uid.setdefault(uid, []).append(comp)
    return Parsed(by_uid, tzs, problems)


def _utc(value: dt.date | dt.datetime, zone: dt.tzinfo) -> tuple[dt.datetime, bool]:
    """A start as UTC, and whether it is all-day. Floating and dates are in ``zone``."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(dt.timezone.utc), False
    return dt.datetime.combine(value, dt.time(), zone).astimezone(dt.timezone.utc), True


def _check_zone(comp: icalendar.cal.Component, prop: str) -> None:
    value = comp.get(prop)
    if value is None:
        return
    tzid = value.params.get("TZID") if hasattr(value, "params") else None
    decoded = getattr(value, "dt", None)
    if tzid and isinstance(decoded, dt.datetime) and decoded.tzinfo is None:
        raise ParseError(f"unknown time zone {tzid!r}")


def _attach_zones(comps: list[icalendar.cal.Component], timezones: Iterable[icalendar.cal.Component]) -> None:
    """Give zone-less times the VTIMEZONE their TZID names.

    icalendar strips blanks from a TZID parameter but not from the VTIMEZONE's own
    TZID ("Mitteleuropäische Zeit "), so such times come out floating.
    """
    zones = {}
    for tz in timezones:
        try:
            zones[str(tz["TZID"]).strip()] = tz.to_tz()  # type: ignore[attr-defined]
        except Exception:
            continue
    if not zones:
        return
    for comp in comps:
        for prop in ("dtstart", "dtend", "recurrence-id"):
            value = comp.get(prop)
            tzid = str(getattr(value, "params", {}).get("TZID", "")).strip()
            inner = getattr(value, "dt", None)
            if tzid in zones and isinstance(inner, dt.datetime) and inner.tzinfo is None:
                value.dt = inner.replace(tzinfo=zones[tzid])


def _party(prop: object) -> Party | None:
    text = str(prop).strip()
    email = text[7:] if text.lower().startswith("mailto:") else text
    email = email.strip().lower()
    params = getattr(prop, "params", {})
    name = params.get("CN")
    return Party(
        email=email if "@" in email else None,
        name=str(name).strip('"') if name else None,
        partstat=str(params.get("PARTSTAT", "")).upper(),
        cutype=str(params.get("CUTYPE", "INDIVIDUAL")).upper(),
    )


#: what an occurrence takes from its component whatever its time: cancelled, summary,
#: organizer, attendees, last modified
_Facts = tuple[bool, str, "Party | None", "tuple[Party, ...]", "dt.datetime | None"]


def _facts(comp: icalendar.cal.Component) -> _Facts:
    modified = comp.get("last-modified") or comp.get("dtstamp")
    last_modified = None
    if modified is not None and isinstance(getattr(modified, "dt", None), dt.datetime):
        last_modified = _utc(modified.dt, dt.timezone.utc)[0]
    attendees = comp.get("attendee", [])
    if not isinstance(attendees, list):
        attendees = [attendees]
    org = comp.get("organizer")
    return (str(comp.get("status", "")).upper() == "CANCELLED", str(comp.get("summary", "")),
            _party(org) if org is not None else None,
            tuple(p for p in (_party(a) for a in attendees) if p is not None), last_modified)


def _made(facts: _Facts, uid: str, start: dt.datetime, all_day: bool, rid: str, end: dt.datetime,
          order: int) -> Occurrence:
    cancelled, summary, organizer, attendees, last_modified = facts
    return Occurrence(uid=uid, recurrence_id=rid, start=start, all_day=all_day, cancelled=cancelled,
                      summary=summary, organizer=organizer, attendees=attendees, last_modified=last_modified,
                      order=order, end=end)


def _occurrence(
    comp: icalendar.cal.Component, uid: str, zone: dt.tzinfo, recurring: bool, order: int
) -> Occurrence:
    start, all_day = _utc(comp.decoded("dtstart"), zone)
    rid = ""
    if recurring:
        orig = comp.get("recurrence-id")
        orig_value = orig.dt if orig is not None else comp.decoded("dtstart")
        rid = _utc(orig_value, zone)[0].strftime("%Y%m%dT%H%M%SZ")
    return _made(_facts(comp), uid, start, all_day, rid, _end(comp, start, all_day, zone), order)


class _Instance:
    """One occurrence of a series as recurring-ical-events finds it: the component it
    comes from (the master, an override, or a THISANDFUTURE one) and its times.

    It stands for the copy of the component the library would otherwise make for each
    occurrence (``as_component``: DTSTART and DTEND replaced, RECURRENCE-ID set to the
    start unless the component has one); ``_instance_occurrence`` reads it as
    ``_occurrence`` reads that copy. Copying costs more than the rest of the expansion.
    """

    __slots__ = ("comp", "end", "start")

    def __init__(self, comp: icalendar.cal.Component, start: Any, end: Any) -> None:
        self.comp, self.start, self.end = comp, start, end

    def __setitem__(self, name: str, value: Any) -> None:
        """The library sets SEQUENCE on what it returns; no occurrence reads it."""


def _instance_occurrence(inst: _Instance, uid: str, zone: dt.tzinfo, order: int,
                         facts: dict[int, tuple[icalendar.cal.Component, _Facts]]) -> Occurrence:
    """``_occurrence`` of the copy ``inst`` stands for; ``facts``: those of the
    components met so far (by id, with the component that keeps its id taken)."""
    start, all_day = _utc(inst.start, zone)
    orig = inst.comp.get("recurrence-id")
    rid = _utc(orig.dt if orig is not None else inst.start, zone)[0].strftime("%Y%m%dT%H%M%SZ")
    try:
        end = max(_utc(inst.end, zone)[0], start)
    except Exception:  # as ``_end``: a broken end must not cost the meeting
        end = start
    known = facts.get(id(inst.comp))
    if known is None or known[0] is not inst.comp:
        known = facts[id(inst.comp)] = (inst.comp, _facts(inst.comp))
    return _made(known[1], uid, start, all_day, rid, end, order)


def _end(comp: icalendar.cal.Component, start: dt.datetime, all_day: bool, zone: dt.tzinfo) -> dt.datetime:
    """DTEND, else DTSTART + DURATION, else the start (a day later for an all-day event)."""
    try:
        if comp.get("dtend") is not None:
            end = _utc(comp.decoded("dtend"), zone)[0]
        elif comp.get("duration") is not None:
            end = start + comp.decoded("duration")
        else:
            end = start + dt.timedelta(days=1 if all_day else 0)
    except Exception:  # a broken end must not cost the meeting; its start is what counts
        return start
    return max(end, start)


def _is_recurring(comps: list[icalendar.cal.Component]) -> bool:
    return len(comps) > 1 or any(
        c.get("rrule") is not None or c.get("rdate") is not None or c.get("recurrence-id") is not None
        for c in comps
    )


# -- bounded expansion ---------------------------------------------------------
# dateutil (under recurring-ical-events) walks every instance from DTSTART up to the
# span asked for, and builds each answer as a list. So the window is walked backwards
# in short spans (recent meetings matter most: a cut series keeps its latest
# occurrences), and for each span the series is moved to start just before it, by
# whole periods of its rule, which leaves every instance in the span where it was. The
# walk stops at MAX_PER_SERIES occurrences or SERIES_SECONDS, whichever comes first.

#: seconds one series may take to expand; past it the series is cut with a warning
SERIES_SECONDS = 5.0
#: a COUNT above this is lowered to it: a counted series is walked from its DTSTART
MAX_COUNT = 100_000
_PERIOD = {"SECONDLY": dt.timedelta(seconds=1), "MINUTELY": dt.timedelta(minutes=1),
           "HOURLY": dt.timedelta(hours=1), "DAILY": dt.timedelta(days=1), "WEEKLY": dt.timedelta(weeks=1)}
_MONTHS = {"MONTHLY": 1, "YEARLY": 12}
_MIN_SPAN = dt.timedelta(minutes=1)
_TARGET = 500  # occurrences per span walked
_YEAR = dt.timedelta(days=366)
#: per BYxxx value, at most this many instances in one period of each FREQ
_PER_BYDAY = {"MONTHLY": 5, "YEARLY": 53}
_PER_BYMONTHDAY = {"YEARLY": 12}
_PER_BYWEEKNO = {"YEARLY": 7}


def _rule_value(rule: Any, key: str, default: Any = None) -> Any:
    values = rule.get(key)
    return values[0] if values else default


def _months_later(value: dt.date, months: int) -> dt.date:
    month = value.month - 1 + months
    return value.replace(year=value.year + month // 12, month=month % 12 + 1)


def _shifted_start(start: dt.date, freq: str, interval: int, anchor: dt.datetime,
                   zone: dt.tzinfo) -> dt.date | None:
    """``start`` moved by whole periods to within one period before ``anchor``; None: keep it.

    The moved DTSTART is itself an instance (RFC 5545), matching the rule or not, so
    it must stay before ``anchor``.
    """
    if isinstance(start, dt.datetime):
        target: dt.date = anchor.astimezone(start.tzinfo) if start.tzinfo else anchor.astimezone(zone).replace(tzinfo=None)
    else:
        target = anchor.astimezone(zone).date()
    if freq in _PERIOD:
        period = _PERIOD[freq] * interval
        if not isinstance(start, dt.datetime) and period % dt.timedelta(days=1):
            return None
        # Aware datetimes of one zone subtract and add as wall-clock times, which is how
        # dateutil steps through them too: the moved series has the same instances.
        steps = -((start - target) // period) - 1  # type: ignore[operator]  # ceil, minus one
        return start + steps * period if steps > 0 else None
    months = _MONTHS[freq] * interval
    steps = ((target.year - start.year) * 12 + target.month - start.month - 1) // months  # an earlier month
    if steps <= 0:
        return None
    try:
        return _months_later(start, steps * months)
    except ValueError:  # the 31st or 29 Feb does not exist in the target month
        return None


def _most(comps: list[icalendar.cal.Component], start: dt.datetime, end: dt.datetime) -> int | None:
    """An upper bound of the occurrences of a series in [start, end); None: unknown.

    Every BYxxx value counts as an expansion (a filter is counted too: a bound, not a count).
    """
    most = 0
    for comp in comps:
        rule = comp.get("rrule")
        rdates = comp.get("rdate")
        most += 1 + sum(len(r.dts) for r in (rdates if isinstance(rdates, list) else [rdates]) if r is not None)
        if rule is None:
            continue
        if isinstance(rule, list):
            return None
        freq = str(_rule_value(rule, "FREQ", "")).upper()
        interval = _rule_value(rule, "INTERVAL", 1)
        if not isinstance(interval, int) or interval < 1 or (freq not in _PERIOD and freq not in _MONTHS):
            return None
        period = _PERIOD.get(freq) or _YEAR * _MONTHS[freq] / 12 * 0.9  # months are 28 days or more
        per = 1
        for key, values in rule.items():
            if key.startswith("BY") and key != "BYSETPOS" and isinstance(values, list):
                factor = {"BYDAY": _PER_BYDAY, "BYMONTHDAY": _PER_BYMONTHDAY, "BYWEEKNO": _PER_BYWEEKNO}.get(key, {})
                per *= len(values) * factor.get(freq, 1)
        periods = (end - start) // (period * interval) + 2
        count = _rule_value(rule, "COUNT")
        most += min(periods * per, count) if isinstance(count, int) else periods * per
    return most


def _finest(comps: list[icalendar.cal.Component]) -> dt.timedelta:
    """The shortest gap two instances of the series' rules can have.

    Instances have distinct start times, so a span of ``n`` such gaps holds at most
    ``n + 1`` of them, however the rule is built.
    """
    finest = dt.timedelta(days=1)
    for comp in comps:
        rules = comp.get("rrule")
        for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
            freq = str(_rule_value(rule, "FREQ", "")).upper()
            for key, unit in (("SECONDLY", dt.timedelta(seconds=1)), ("MINUTELY", dt.timedelta(minutes=1)),
                              ("HOURLY", dt.timedelta(hours=1))):
                if freq == key or rule.get("BY" + key[:-2]):  # BYSECOND, BYMINUTE, BYHOUR
                    finest = min(finest, unit)
    return finest


def _movable(comp: icalendar.cal.Component) -> bool:
    rule = comp.get("rrule")
    return (comp.get("recurrence-id") is None and rule is not None and not isinstance(rule, list)
            and _rule_value(rule, "COUNT") is None and str(_rule_value(rule, "FREQ", "")).upper() in {*_PERIOD, *_MONTHS})


def _bounded_master(comp: icalendar.cal.Component, anchor: dt.datetime | None, zone: dt.tzinfo,
                    notes: list[str]) -> tuple[icalendar.cal.Component, bool]:
    """A copy of a series' master with a bounded COUNT, moved to start near ``anchor``.

    Returns:
        The component, and whether it was moved (it then depends on ``anchor``).
    """
    rule = comp.get("rrule")
    if rule is None or isinstance(rule, list):
        return comp, False
    count = _rule_value(rule, "COUNT")
    if isinstance(count, int):
        if count <= MAX_COUNT:
            return comp, False
        copy = comp.copy()
        new_rule = icalendar.vRecur(rule)
        new_rule["COUNT"] = [MAX_COUNT]
        copy["RRULE"] = new_rule
        notes.append(f"COUNT={count} lowered to {MAX_COUNT}")
        return copy, False
    freq = str(_rule_value(rule, "FREQ", "")).upper()
    interval = _rule_value(rule, "INTERVAL", 1)
    if anchor is None or (freq not in _PERIOD and freq not in _MONTHS) or not isinstance(interval, int) or interval < 1:
        return comp, False
    start = comp.decoded("dtstart")
    moved = _shifted_start(start, freq, interval, anchor, zone)
    if moved is None:
        return comp, False
    delta = moved - start
    copy = comp.copy()
    for prop in ("dtstart", "dtend"):
        value = comp.get(prop)
        if value is not None:
            del copy[prop]
            kept = {k: v for k, v in value.params.items() if k == "VALUE"}
            copy.add(prop, value.dt + delta, parameters=kept)
    return copy, True


@functools.cache
def _select() -> Any:
    """The library's VEVENT selection with an adapter whose ``as_component`` gives an
    ``_Instance`` (its ``components`` option)."""
    import recurring_ical_events

    class Adapter(recurring_ical_events.EventAdapter):  # type: ignore[misc]
        def as_component(self, start: Any = None, stop: Any = None,
                         keep_recurrence_attributes: bool = True) -> _Instance:
            return _Instance(self._component, self.start if start is None else start,
                             self.end if stop is None else stop)

    return recurring_ical_events.ComponentsWithName("VEVENT", Adapter)


def _query(cal: icalendar.Calendar) -> Any:
    """A recurring-ical-events query of ``cal``'s VEVENTs whose occurrences are ``_Instance``s."""
    # Loaded with the first recurring series: most passes change single events only.
    import recurring_ical_events

    return recurring_ical_events.of(cal, components=[_select()])


class _Series:
    """One UID's components as recurring-ical-events queries, anchored where asked."""

    def __init__(self, comps: list[icalendar.cal.Component], timezones: list[icalendar.cal.Component],
                 zone: dt.tzinfo, notes: list[str]) -> None:
        self.comps, self.timezones, self.zone = comps, timezones, zone
        query = self._build(None, notes)[0]  # notes the lowered COUNTs, once
        # Without a movable rule the query is the same for every span: build it once.
        self.fixed: Any = None if any(_movable(c) for c in comps) else query

    def _build(self, anchor: dt.datetime | None, notes: list[str]) -> tuple[Any, bool]:
        cal = icalendar.Calendar()
        for tz in self.timezones:
            cal.add_component(tz)
        any_moved = False
        for comp in self.comps:
            if comp.get("recurrence-id") is None:
                comp, moved = _bounded_master(comp, anchor, self.zone, notes)
                any_moved |= moved
            cal.add_component(comp)
        return _query(cal), any_moved

    def between(self, lo: dt.datetime, hi: dt.datetime) -> list[_Instance]:
        """The occurrences overlapping [lo, hi)."""
        query = self.fixed if self.fixed is not None else self._build(lo, [])[0]
        return list(query.between(lo, hi))


def _expand_series(uid: str, series: _Series, start: dt.datetime, end: dt.datetime, zone: dt.tzinfo,
                   order: int, notes: list[str]) -> list[Occurrence]:
    """Occurrences starting in [start, end), in order, walked backwards span by span."""
    deadline = time.monotonic() + SERIES_SECONDS
    spans: list[list[Occurrence]] = []
    facts: dict[int, tuple[icalendar.cal.Component, _Facts]] = {}
    most = _most(series.comps, start, end)
    # A series that cannot fill the budget is read in one go (most are: weekly meetings,
    # birthdays); a dense one in spans that cannot hold much more than _TARGET.
    widest = end - start if most is not None and most <= MAX_PER_SERIES else _TARGET * _finest(series.comps)
    total, span, hi, stop = 0, widest, end, ""
    while hi > start:
        lo = max(hi - span, start)
        found = [_instance_occurrence(i, uid, zone, order, facts) for i in series.between(lo, hi)]
        # A span also returns what merely overlaps it: each start belongs to one span.
        found = sorted((o for o in found if lo <= o.start < hi), key=lambda o: (o.start, o.recurrence_id))
        spans.append(found)
        total += len(found)
        if total >= MAX_PER_SERIES:
            stop = "count"
            break
        if time.monotonic() > deadline:
            stop = "time"
            break
        if len(found) < _TARGET // 4:
            span = min(span * 2, widest)
        elif len(found) > _TARGET:
            span = max(span / 2, _MIN_SPAN)
        hi = lo
    out = [o for found in reversed(spans) for o in found][-MAX_PER_SERIES:]
    if stop == "count":
        notes.append(f"more than {MAX_PER_SERIES} occurrences in the window; kept the latest {len(out)}")
    elif stop == "time":
        notes.append(f"expansion took more than {SERIES_SECONDS:g} s; kept the latest {len(out)} occurrences")
    return out


def expand(
    uid: str,
    comps: list[icalendar.cal.Component],
    timezones: Iterable[icalendar.cal.Component],
    start: dt.datetime,
    end: dt.datetime,
    zone: dt.tzinfo,
    order: int = 0,
    notes: list[str] | None = None,
) -> tuple[list[Occurrence], bool]:
    """Occurrences of one UID's components between ``start`` and ``end``.

    A series is expanded from the window, within a budget (``MAX_PER_SERIES``
    occurrences, ``SERIES_SECONDS``): past it, the series is cut and a line saying so
    is appended to ``notes`` (for the caller's warning, which names account and href).

    Returns:
        The occurrences, and whether the series recurs (it must then be re-expanded as
        the window moves).

    Raises:
        ParseError: the series cannot be read (bad dates, unknown time zone, bad RRULE).
    """
    notes = notes if notes is not None else []
    try:
        timezones = list(timezones)
        _attach_zones(comps, timezones)
        for comp in comps:
            _check_zone(comp, "dtstart")
            if comp.get("dtstart") is None:
                raise ParseError("no DTSTART")
        if not _is_recurring(comps):
            # A single event never needs re-expansion, so it is kept whatever the window.
            return [_occurrence(comps[0], uid, zone, False, order)], False
        series = _Series(comps, timezones, zone, notes)
        return _expand_series(uid, series, start, end, zone, order, notes), True
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"{type(exc).__name__}: {exc}") from exc


# -- the text of a plain single meeting, rebuilt ---------------------------------
# The ledger keeps no text for an object holding one plain single meeting (see
# ``syncd.parse_pool.plain``): its occurrence says all of it. Should another object of
# the collection come to hold the same UID, the two are expanded together, and the
# first one's text is rebuilt from its occurrence. ``rebuildable`` admits only what
# this rebuilds as it was read: printable names (no quote, backslash or caret) and
# summary, plain addresses.
_TOKEN = re.compile(r"[A-Za-z0-9-]+")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+\-@'!#$&*/=?^`{|}~]*")


def _plain_party(prop: object) -> bool:
    text = str(prop).strip()
    email = text[7:] if text.lower().startswith("mailto:") else text
    params = getattr(prop, "params", {})
    name = params.get("CN")
    if name:
        name = str(name).strip('"')
        # a quote cannot be in a parameter; a backslash or caret may be read as an escape
        if not name.isprintable() or any(c in name for c in '"\\^') or name != name.strip():
            return False
    return bool(_ADDRESS.fullmatch(email.strip())) and all(
        _TOKEN.fullmatch(str(params[k])) for k in ("PARTSTAT", "CUTYPE") if k in params)


def rebuildable(comp: icalendar.cal.Component) -> bool:
    """Whether ``text_of`` rebuilds this single meeting's occurrence as it was read."""
    if not (str(comp.get("summary", "")).isprintable() and str(comp.get("uid", "")).isprintable()):
        return False
    attendees = comp.get("attendee", [])
    if not isinstance(attendees, list):
        attendees = [attendees]
    org = comp.get("organizer")
    return all(_plain_party(p) for p in [*attendees, *([org] if org is not None else [])])


def _address(p: Party) -> icalendar.vCalAddress:
    addr = icalendar.vCalAddress(f"mailto:{p.email or ''}")
    if p.name:
        addr.params["CN"] = p.name
    if p.partstat:
        addr.params["PARTSTAT"] = p.partstat
    if p.cutype != "INDIVIDUAL":
        addr.params["CUTYPE"] = p.cutype
    return addr


def text_of(occ: Occurrence) -> str:
    """A calendar object holding ``occ``, a single meeting at absolute times, as
    ``split`` and ``expand`` read it back (see ``rebuildable``)."""
    event = icalendar.Event()
    event.add("uid", occ.uid)
    event.add("dtstart", occ.start)
    if occ.end is not None:
        event.add("dtend", occ.end)
    event.add("summary", occ.summary)
    if occ.cancelled:
        event.add("status", "CANCELLED")
    if occ.last_modified is not None:
        event.add("last-modified", occ.last_modified)
    if occ.organizer is not None:
        event.add("organizer", _address(occ.organizer))
    for a in occ.attendees:
        event.add("attendee", _address(a))
    cal = icalendar.Calendar()
    cal.add("prodid", "-//syncd//rebuilt//EN")
    cal.add("version", "2.0")
    cal.add_component(event)
    return cal.to_ical().decode("utf-8")

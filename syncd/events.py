"""iCalendar objects to occurrences: parsing, time zones and recurrence.

Public API: ``decode``, ``split``, ``expand``. Recurrence expansion is the
recurring-ical-events library's (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides); this
module only groups components by UID, bounds the window and the count, and turns each
occurrence into an ``infer.Occurrence``. A component that cannot be read is skipped
and reported; its siblings are still read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import icalendar
import recurring_ical_events

from syncd.errors import ParseError
from syncd.infer import Occurrence, Party

log = logging.getLogger(__name__)

#: a series yielding more than this inside the window is cut (FREQ=SECONDLY and friends)
MAX_PER_SERIES = 5000
_DENSE = {"SECONDLY", "MINUTELY", "HOURLY"}
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


def _occurrence(
    comp: icalendar.cal.Component, uid: str, zone: dt.tzinfo, recurring: bool, order: int
) -> Occurrence:
    start, all_day = _utc(comp.decoded("dtstart"), zone)
    rid = ""
    if recurring:
        orig = comp.get("recurrence-id")
        orig_value = orig.dt if orig is not None else comp.decoded("dtstart")
        rid = _utc(orig_value, zone)[0].strftime("%Y%m%dT%H%M%SZ")
    modified = comp.get("last-modified") or comp.get("dtstamp")
    last_modified = None
    if modified is not None and isinstance(getattr(modified, "dt", None), dt.datetime):
        last_modified = _utc(modified.dt, dt.timezone.utc)[0]
    attendees = comp.get("attendee", [])
    if not isinstance(attendees, list):
        attendees = [attendees]
    org = comp.get("organizer")
    return Occurrence(
        uid=uid,
        recurrence_id=rid,
        start=start,
        all_day=all_day,
        cancelled=str(comp.get("status", "")).upper() == "CANCELLED",
        summary=str(comp.get("summary", "")),
        organizer=_party(org) if org is not None else None,
        attendees=tuple(p for p in (_party(a) for a in attendees) if p is not None),
        last_modified=last_modified,
        order=order,
        end=_end(comp, start, all_day, zone),
    )


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


def expand(
    uid: str,
    comps: list[icalendar.cal.Component],
    timezones: Iterable[icalendar.cal.Component],
    start: dt.datetime,
    end: dt.datetime,
    zone: dt.tzinfo,
    order: int = 0,
) -> tuple[list[Occurrence], bool]:
    """Occurrences of one UID's components between ``start`` and ``end``.

    Returns:
        The occurrences, and whether the series recurs (it must then be re-expanded as
        the window moves).

    Raises:
        ParseError: the series cannot be read (bad dates, unknown time zone, bad RRULE).
    """
    try:
        _attach_zones(comps, timezones)
        for comp in comps:
            _check_zone(comp, "dtstart")
            if comp.get("dtstart") is None:
                raise ParseError("no DTSTART")
        if not _is_recurring(comps):
            # A single event never needs re-expansion, so it is kept whatever the window.
            return [_occurrence(comps[0], uid, zone, False, order)], False
        cal = icalendar.Calendar()
        for tz in timezones:
            cal.add_component(tz)
        for comp in comps:
            cal.add_component(comp)
        query = recurring_ical_events.of(cal, components=["VEVENT"])
        # between() materialises everything; sub-daily series could be millions long,
        # so those are walked lazily and cut.
        dense = any(
            str(c.get("rrule", {}).get("FREQ", [""])[0]).upper() in _DENSE for c in comps
        )
        # Past the cap, keep the latest occurrences of a bounded series: recent ones matter.
        found = (itertools.islice(query.after(start), MAX_PER_SERIES) if dense
                 else iter(query.between(start, end)[-MAX_PER_SERIES:]))
        out = []
        for comp in found:
            occ = _occurrence(comp, uid, zone, True, order)
            if occ.start >= end:
                break
            if occ.start >= start:
                out.append(occ)
        return out, True
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"{type(exc).__name__}: {exc}") from exc

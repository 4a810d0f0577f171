"""Follow-ups as iCalendar objects: rendering, reading back, cancelling.

Shared by every sink that stores iCalendar (vdir, CalDAV). A follow-up is a VTODO
(or, with ``tasks_as = "event"``, an all-day VEVENT with a VALARM) carrying
``X-SYNCD-RULE`` and ``X-SYNCD-KEY``; only objects carrying ``X-SYNCD-KEY`` are ours.
"""

from __future__ import annotations

import datetime as dt

import icalendar

from syncd_connectors.base import RemoteTask, TaskSpec

PRODID = "-//syncd//syncd//EN"


def _stamp(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.timezone.utc).replace(microsecond=0)


def render(task: TaskSpec, now: dt.datetime, as_event: bool = False) -> str:
    """The iCalendar text of a new follow-up."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    comp: icalendar.cal.Component = icalendar.Event() if as_event else icalendar.Todo()
    comp.add("uid", task.uid)
    comp.add("dtstamp", _stamp(now))
    comp.add("created", _stamp(now))
    comp.add("last-modified", _stamp(now))
    comp.add("summary", task.summary)
    comp.add("description", task.description)
    if as_event:
        comp.add("dtstart", task.due)
        comp.add("dtend", task.due + dt.timedelta(days=1))
        comp.add("transp", "TRANSPARENT")
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", task.summary)
        alarm.add("trigger", dt.timedelta(hours=9))
        comp.add_component(alarm)
    else:
        comp.add("due", task.due)
        comp.add("status", "NEEDS-ACTION")
    comp.add("x-syncd-rule", task.rule)
    comp.add("x-syncd-key", task.key)
    cal.add_component(comp)
    return cal.to_ical().decode("utf-8")


def _ours(data: str) -> icalendar.cal.Component | None:
    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception:
        return None
    for comp in cal.walk():
        if comp.name in ("VTODO", "VEVENT") and comp.get("x-syncd-key") is not None:
            return comp
    return None


def read(data: str) -> RemoteTask | None:
    """What a sink holds: None when the object is not a follow-up syncd wrote."""
    comp = _ours(data)
    if comp is None:
        return None
    status = str(comp.get("status", "")).upper()
    try:
        percent = int(str(comp.get("percent-complete", 0)))
    except ValueError:
        percent = 0
    completed_at = None
    if comp.get("completed") is not None:
        try:
            value = comp.decoded("completed")
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    value = value.replace(tzinfo=dt.timezone.utc)
                completed_at = value.astimezone(dt.timezone.utc)
        except Exception:
            completed_at = None
    return RemoteTask(
        uid=str(comp.get("uid")),
        completed=status == "COMPLETED" or percent >= 100 or completed_at is not None,
        completed_at=completed_at,
        cancelled=status == "CANCELLED",
        due=_day(comp, "due" if comp.name == "VTODO" else "dtstart"),
    )


def _day(comp: icalendar.cal.Component, prop: str) -> dt.date | None:
    """The date of DUE (a task) or DTSTART (an all-day event), as the user left it."""
    if comp.get(prop) is None:
        return None
    try:
        value = comp.decoded(prop)
    except Exception:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def cancelled(data: str, now: dt.datetime) -> str | None:
    """``data`` with its follow-up set to STATUS:CANCELLED, everything else kept.

    SEQUENCE is not bumped: this is syncd's bookkeeping, not a change the user made.
    Returns None when the object is not ours or is already cancelled.
    """
    cal = icalendar.Calendar.from_ical(data)
    for comp in cal.walk():
        if comp.name in ("VTODO", "VEVENT") and comp.get("x-syncd-key") is not None:
            if str(comp.get("status", "")).upper() == "CANCELLED":
                return None
            comp.pop("status", None)
            comp.add("status", "CANCELLED")
            comp.pop("last-modified", None)
            comp.add("last-modified", _stamp(now))
            comp.pop("dtstamp", None)
            comp.add("dtstamp", _stamp(now))
            return cal.to_ical().decode("utf-8")
    return None

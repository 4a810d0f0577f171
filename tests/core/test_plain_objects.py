"""An object holding one plain single meeting is kept as its occurrence, without its text
(schema 4): what the user sees is the same as when the text is kept, also when another
object comes to hold the same UID, goes again, or the window moves."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import events, parse_pool
from syncd.model import Occurrence, Party
from tests.helpers import ME, World, event

NOW = "2026-06-15T10:00:00Z"


def _texts(w: World) -> dict[str, str]:
    """href -> stored text ('' when none is kept), of the first calendar."""
    with sqlite3.connect(w.root / "state" / "ledger.sqlite3") as db:
        return {href: data for href, data in db.execute(
            "SELECT o.href, o.data FROM objects o JOIN collections c ON c.id = o.collection WHERE c.name='personal'")}


def _seen(w: World, now: str = NOW) -> dict[str, Any]:
    people = w.people(now=now)
    return {n: (p, json.loads(w.run("person", p["emails"][0], "--json", now=now).stdout)["history"])
            for n, p in people.items()}


def _met(w: World, email: str) -> int:
    """How many meetings ``syncd people`` counts with the person of ``email``."""
    return int(next(p["interactions"] for p in w.people(now=NOW).values() if email in p["emails"]))


def _calendar(*events_: str) -> str:
    """One VCALENDAR holding the VEVENTs of ``events_`` (each a whole VCALENDAR)."""
    body = [e.split("BEGIN:VEVENT", 1)[1].rsplit("END:VEVENT", 1)[0] for e in events_]
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
            + "".join(f"BEGIN:VEVENT{b}END:VEVENT\r\n" for b in body) + "END:VCALENDAR\r\n")


def test_a_plain_meeting_keeps_no_text_and_what_is_seen_is_the_same(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_event("plain", event("plain", "20260610T100000", "Coffee", ["ana@example.org;CN=Ana;PARTSTAT=ACCEPTED"]))
    w.add_event("floating", event("floating", "20260611T100000", "Tea", ["ana@example.org"], tzid=None))
    w.add_event("weekly", event("weekly", "20260601T100000", "Standup", ["ana@example.org"],
                                extra=["RRULE:FREQ=WEEKLY;COUNT=3"]))
    w.run("--backfill", now=NOW)
    texts = _texts(w)
    # only the plain one: a floating time depends on the time zone, a series on the window
    assert texts["plain.ics"] == "" and texts["floating.ics"] and texts["weekly.ics"]
    before = _seen(w)
    assert _met(w, "ana@example.org") == 5  # 1 + 1 + 3 weekly
    # a wider window expands every stored object again: the plain meeting stays as it was
    w.run("--backfill", "--since", "2019-01-01", now=NOW)
    assert _seen(w) == before


def test_a_second_object_with_the_same_uid_is_read_with_the_first_as_if_its_text_were_kept(tmp_path: Path) -> None:
    first = event("e1", "20260610T100000", "Coffee", ["ana@example.org;CN=Ana Lima;PARTSTAT=ACCEPTED"],
                  extra=["LAST-MODIFIED:20260601T000000Z"])
    again = event("e1", "20260610T100000", "Coffee (moved)", ["ana@example.org", "bo@example.org"],
                  extra=["LAST-MODIFIED:20260605T000000Z", "SEQUENCE:1"])
    export = _calendar(again, event("e2", "20260612T100000", "Lunch", ["bo@example.org"]))
    # a: e1.ics alone first, kept without its text; then an export holding e1 too
    a = World(tmp_path / "a")
    a.add_event("e1", first)
    a.run("--backfill", now=NOW)
    assert _texts(a)["e1.ics"] == ""
    a.add_event("all", export)
    a.run("sync", now=NOW)
    # b: both at once; all.ics is listed first, so e1.ics is stored with its text
    b = World(tmp_path / "b")
    b.add_event("e1", first)
    b.add_event("all", export)
    b.run("--backfill", now=NOW)
    assert _texts(b)["e1.ics"] != ""
    assert _seen(a) == _seen(b)
    assert _texts(a)["e1.ics"] != ""  # rebuilt: the two are expanded together from now on
    for w in (a, b):  # the export goes again: e1.ics alone is left
        (w.cal / "all.ics").unlink()
        w.run("sync", now=NOW)
    assert _seen(a) == _seen(b)
    assert _met(a, "ana@example.org") == 1


def test_a_plain_meeting_edited_or_deleted_is_seen_so(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_event("e1", event("e1", "20260610T100000", "Coffee", ["ana@example.org"]))
    w.run("--backfill", now=NOW)
    w.add_event("e1", event("e1", "20260610T100000", "Coffee", ["bo@example.org"]))
    w.run("sync", now=NOW)
    assert [p["emails"] for p in w.people(now=NOW).values()] == [["bo@example.org"]] and _texts(w)["e1.ics"] == ""
    (w.cal / "e1.ics").unlink()
    w.run("sync", "--allow-empty", "files", now=NOW)
    assert w.people(now=NOW) == {}


# -- the rebuilt text reads back as the occurrence it was made from ----------------
_printable = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40).filter(
    str.isprintable)
_name = st.none() | _printable.map(str.strip).filter(lambda s: s and not any(c in s for c in '"\\^'))
_email = st.none() | st.emails().map(str.lower).filter(lambda e: events._ADDRESS.fullmatch(e) is not None)
_party = st.builds(Party, _email, _name, st.sampled_from(["", "ACCEPTED", "DECLINED", "NEEDS-ACTION"]),
                   st.sampled_from(["INDIVIDUAL", "ROOM", "GROUP", "RESOURCE"]))
_when = st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2099, 1, 1), timezones=st.just(dt.timezone.utc)).map(
    lambda d: d.replace(microsecond=0))
_uid = _printable.map(str.strip).filter(lambda s: s and not s.startswith("(no uid)"))


@settings(max_examples=500, deadline=None)
@given(_uid, _when, st.integers(0, 10 * 86400), _printable, st.booleans(), st.none() | _party,
       st.lists(_party, max_size=4), st.none() | _when)
def test_a_rebuilt_plain_meeting_reads_back_as_it_was(uid: str, start: dt.datetime, seconds: int, summary: str,
                                                      cancelled: bool, org: Party | None, att: list[Party],
                                                      modified: dt.datetime | None) -> None:
    occ = Occurrence(uid, "", start, False, cancelled, summary, org, tuple(att), modified,
                     end=start + dt.timedelta(seconds=seconds))
    parsed = events.split(events.text_of(occ))
    assert parse_pool.plain(parsed)  # what a rebuilt text says is a plain meeting again
    assert list(parsed.by_uid) == [uid]
    back, recurring = events.expand(uid, parsed.by_uid[uid], parsed.timezones, start, start, dt.timezone.utc)
    assert back == [occ] and not recurring


def test_what_a_rebuilt_text_cannot_say_keeps_the_text() -> None:
    def plain(*lines: str) -> bool:
        return parse_pool.plain(events.split(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTART:20260610T100000Z\r\n" + "".join(
                line + "\r\n" for line in lines) + "END:VEVENT\r\nEND:VCALENDAR\r\n"))

    assert plain("SUMMARY:Coffee", f"ORGANIZER:mailto:{ME}", "ATTENDEE;CN=Ana;PARTSTAT=ACCEPTED:mailto:a@x.org")
    assert not plain("SUMMARY:Coffee", "RRULE:FREQ=DAILY;COUNT=2")
    assert not plain("SUMMARY:Coffee", "SEQUENCE:2")
    assert not plain("SUMMARY:Coffee\\nand cake")
    assert not plain("ATTENDEE;CN=Ana:mailto:a b@x.org")
    assert not plain("ATTENDEE;CN=A\\b:mailto:a@x.org")  # a backslash in a name
    assert not plain("ATTENDEE;CN=Ana ^'Z^':mailto:a@x.org")  # a quote in a name (RFC 6868)
    assert not plain("ATTENDEE;PARTSTAT=X_Y:mailto:a@x.org")
    assert not plain('ATTENDEE;CN="Ana\\":mailto:a@x.org')  # a written backslash would eat the address's colon
    assert not parse_pool.plain(events.split(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTART;VALUE=DATE:20260610\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))

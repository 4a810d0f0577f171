"""A big backfill is read by worker processes; the ledger stores texts packed.

What a user would notice: a backfill read on several cores ends exactly where the same
files read a few at a time end (people, warnings naming account and href, cut series,
one UID in many files), and a ledger written before texts were packed still reads.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import ledger as L
from syncd import parse_pool
from syncd.model import Occurrence, Party
from tests.helpers import World, event, vcard

NOW = "2026-06-15T10:00:00Z"


def _world(root: Path, n: int) -> tuple[World, list[tuple[str, str, bool]]]:
    """A world and ``n`` files to add to it: meetings, a series with an override in a
    file of its own, a file repeating UIDs, a broken file and a recurrence bomb."""
    w = World(root)
    w.add_contact("ana", vcard("Ana Lima", "ana@example.com", groups="Friends"))
    w.add_contact("bo", vcard("Bo Chen", "bo@example.com", groups="Family"))
    files = []
    for i in range(n - 4):
        who = "ana@example.com" if i % 3 else "bo@example.com"
        files.append((f"m{i:04d}", event(f"m{i}@t", f"2026{1 + i % 5:02d}{1 + i % 28:02d}T{9 + i % 8:02d}0000",
                                         f"Meeting {i}", [who, f"x{i % 7}@example.net"]), False))
    files.append(("weekly", event("weekly@t", "20260105T090000", "Weekly", ["ana@example.com"],
                                  extra=["RRULE:FREQ=WEEKLY;COUNT=20"]), False))
    moved = event("weekly@t", "20260112T110000", "Weekly (moved)", ["bo@example.com"],
                  extra=["RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000"])
    files.append(("weekly-moved", moved, False))
    files.append(("export", event("m1@t", "20260102T100000", "Meeting 1", ["ana@example.com"]), True))
    files.append(("broken", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:broken@t\r\nDTSTART:2026XX\r\n"
                            "END:VEVENT\r\nEND:VCALENDAR\r\n", False))
    files.append(("bomb", event("bomb@t", "19700101T000000Z", "bomb", ["ana@example.com"],
                                extra=["RRULE:FREQ=SECONDLY"]), True))
    return w, files


def _warnings(stderr: str) -> list[str]:
    return sorted(ln.split("WARNING", 1)[1].strip() for ln in stderr.splitlines() if "WARNING" in ln)


def test_a_backfill_read_by_workers_ends_where_a_few_files_at_a_time_end(tmp_path: Path) -> None:
    n = parse_pool.MIN_TOTAL + 60
    big, files = _world(tmp_path / "big", n)
    small, _ = _world(tmp_path / "small", n)
    for name, text, second in files:
        big.add_event(name, text, second=second)
    out = big.run("--backfill", now=NOW, timeout=300)
    step = parse_pool.MIN_BATCH // 2  # too few for the workers: read in-process
    warned = []
    for k in range(0, len(files), step):
        for name, text, second in files[k:k + step]:
            small.add_event(name, text, second=second)
        warned += _warnings(small.run("--backfill" if k == 0 else "sync", now=NOW, timeout=300).stderr)
    assert big.people() == small.people()
    assert _warnings(out.stderr) == sorted(warned)
    assert any("account files" in ln and "bomb.ics" in ln and "cut" in ln for ln in _warnings(out.stderr))
    assert any("account files" in ln and "broken.ics" in ln for ln in _warnings(out.stderr))
    assert big.people()["Bo Chen"]["interactions"] == small.people()["Bo Chen"]["interactions"] > 0


def test_a_ledger_of_text_rows_is_read_and_gives_the_same_people(tmp_path: Path) -> None:
    w, files = _world(tmp_path / "w", 30)
    for name, text, second in files:
        w.add_event(name, text, second=second)
    w.run("--backfill", now=NOW)
    before = w.people()
    path = w.root / "state" / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM objects WHERE typeof(data) = 'blob'").fetchone()[0] > 0
    # as syncd 0.1 wrote them: the texts as TEXT, occurrences as JSON objects
    with conn:
        for cid, href, data in conn.execute("SELECT collection, href, data FROM objects").fetchall():
            conn.execute("UPDATE objects SET data=? WHERE collection=? AND href=?", (L.unpack(data), cid, href))
        for rowid, uid, data in conn.execute("SELECT id, uid, data FROM series").fetchall():
            lines = []
            for line in L._lines(uid, data):
                o = L.occurrence_from(json.loads(line), 0)
                old = {"uid": o.uid, "rid": o.recurrence_id, "start": L.iso(o.start), "all_day": o.all_day,
                       "cancelled": o.cancelled, "summary": o.summary,
                       "org": o.organizer and [o.organizer.email, o.organizer.name, o.organizer.partstat,
                                               o.organizer.cutype],
                       "att": [[a.email, a.name, a.partstat, a.cutype] for a in o.attendees],
                       "mod": L.iso(o.last_modified)}
                lines.append(json.dumps(old))
            conn.execute("UPDATE series SET data=? WHERE id=?", ("\n".join(lines), rowid))
        for table in ("people", "stories"):
            for key, data in conn.execute(f"SELECT key, data FROM {table}").fetchall():
                conn.execute(f"UPDATE {table} SET data=? WHERE key=?", (L.unpack(data), key))
    for table in ("objects", "series", "people", "stories"):
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE typeof(data) = 'blob'").fetchone()[0] == 0
    conn.close()
    w.write_config(daily_limit=4)  # a changed config derives everyone again, from those rows
    w.run("sync", now=NOW)
    assert w.people() == before
    w.run("--backfill", "--since", "2019-01-01", now=NOW)  # a wider window re-expands every stored object
    assert w.people() == before


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
_party = st.builds(Party, st.none() | st.emails(), st.none() | _text, st.sampled_from(["", "ACCEPTED", "DECLINED"]),
                   st.sampled_from(["INDIVIDUAL", "ROOM", "", "GROUP"]))
_when = st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.timezone.utc)).map(
    lambda d: d.replace(microsecond=0))


@settings(max_examples=200, deadline=None)
@given(st.builds(Occurrence, _text, st.sampled_from(["", "20260101T090000Z"]), _when, st.booleans(), st.booleans(),
                 _text, st.none() | _party, st.lists(_party, max_size=4).map(tuple), st.none() | _when,
                 st.just(3), st.none() | _when, st.just("acc"), st.just("cal")),
       st.booleans())
def test_an_occurrence_reads_back_as_it_was_stored(o: Occurrence, packed: bool) -> None:
    data = L.occurrence_data(o, packed)
    assert isinstance(data, bytes) == packed
    assert L.occurrence_from(json.loads(L.unpack(data)), 3, "acc", "cal") == o


@given(_text)
def test_a_packed_text_reads_back(text: str) -> None:
    assert L.unpack(L.pack(text)) == text
    assert L.unpack(text) == text


def test_a_listing_that_fails_while_read_ahead_still_hands_over_the_batch_before() -> None:
    """The workers' listing is read a batch ahead; a failure reading the next batch
    must come after the batch before it is in (the pass commits that batch)."""
    from syncd.errors import AccountError
    from syncd_connectors.base import EVENTS, ChangeBatch, Collection, Connector, RawObject

    asked: list[str] = []
    first = ChangeBatch(upserts=[RawObject(f"m{i}.ics", "e", event(f"m{i}@t", "20260105T090000", f"Meeting {i}",
                                                                  ["ana@example.com"]))
                                 for i in range(parse_pool.MIN_BATCH)], total=parse_pool.MIN_TOTAL)

    class Failing:
        def changes(self, collection: Collection, cursor: object, known: object, since: object
                    ) -> Iterator[ChangeBatch]:
            asked.append("first")
            yield first
            asked.append("second")
            raise AccountError("the server went away")

    zone = dt.timezone.utc
    pool = parse_pool.Pool(dt.datetime(2025, 1, 1, tzinfo=zone), dt.datetime(2027, 1, 1, tzinfo=zone), zone, True,
                           workers=2)
    got, seen = [], []
    stream = pool.ahead(cast(Connector, Failing())).changes(Collection("c", "c", EVENTS), None, {}, dt.datetime(2025, 1, 1))
    try:
        for batch in stream:
            seen.append(list(asked))  # what the listing had been asked when this batch came
            got.append([pool.take(obj) for obj in batch.upserts])
        raise AssertionError("the failure was lost")
    except AccountError as exc:
        assert "went away" in str(exc)
    assert seen == [["first", "second"]]  # read ahead: the next batch was asked for first
    assert len(got) == 1 and all(p is not None and p.uids == [f"m{i}@t"] for i, p in enumerate(got[0]))

"""The dialect seam: the same ``Ledger`` calls give the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd import ledger as ledger_mod
from syncd.ledger import FollowupRow, Interaction, Ledger
from tests.helpers import rows_of
from tests.team import pg


@pytest.fixture
def both(team_db: str, tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    """(SQLite, PostgreSQL) ledgers, both new."""
    lite = Ledger.open(tmp_path / "ledger.sqlite3")
    pgl, drop = pg.member_ledger(team_db)
    yield lite, pgl
    lite.close()
    drop()


def _row(uid: str, cycle: str = "c1") -> FollowupRow:
    return FollowupRow(uid=uid, rule="keep_in_touch", key="k", person="p1", name="Ana 50% Lima?", emails=["a@x"],
                       cycle=cycle, due=dt.date(2026, 6, 1), summary="s", reason="it's due", account="files",
                       state="pending", written_on=dt.date(2026, 5, 1))


def test_replace_and_ignore_mean_the_same(both: tuple[Ledger, Ledger]) -> None:
    for led in both:
        with led.transaction():
            led.put_followup(_row("u1"))
            led.put_followup(_row("u1"))          # same key: replaced
            led.put_followup(_row("u2"))          # same (rule, person, cycle): SQLite drops u1
            led.put_followup(_row("u3", "c2"))
            led.set_meta("x", "1")
            led.set_meta("x", "2")
            cid = led.collection("acc", "events", "r", "Cal").id if led.ensure_account("acc", "vdir") is None else 0
            led.put_object(cid, "h1", "e1", "data", ["uid1", "uid1"], None)   # OR IGNORE on the duplicate UID
    lite, pgl = both
    assert [r.uid for r in lite.followups()] == [r.uid for r in pgl.followups()] == ["u2", "u3"]
    assert pgl.followups()[0].name == "Ana 50% Lima?" and pgl.followups()[0].reason == "it's due"
    assert lite.meta("x") == pgl.meta("x") == "2"
    assert [tuple(r) for r in lite.objects_with_uid(1, "uid1")] == [tuple(r) for r in pgl.objects_with_uid(1, "uid1")]


def test_text_sorts_and_compares_as_in_sqlite(both: tuple[Ledger, Ledger]) -> None:
    names = ["b", "B", "a b", "ab", "Ä", "a-b", "a_b", "2026-06-01T10:00:00Z", "2026-06-01T9:00:00Z"]
    for led in both:
        with led.transaction():
            for n in names:
                led.put_followup(FollowupRow(**{**_row(n, n).__dict__, "name": n}))
    assert [r.name for r in both[0].followups()] == [r.name for r in both[1].followups()]


def test_interactions_end_column(both: tuple[Ledger, Ledger]) -> None:
    """The ``interactions`` view shows the rows as schema 3 stored them, in both databases."""
    t = dt.datetime(2026, 1, 1, 10, tzinfo=dt.timezone.utc)
    lunch = Interaction("p", "u", "", t, t + dt.timedelta(hours=1), "Lunch", "a", "c", 1, False)
    for led in both:
        with led.transaction():
            led.replace_people(rows_of({"p": [lunch], "q": [dataclasses.replace(lunch, person="q")]}))
    rows = [led.conn.execute("SELECT * FROM interactions ORDER BY person").fetchall() for led in both]
    assert [tuple(r) for r in rows[0]] == [tuple(r) for r in rows[1]] == [
        (k, "u", "", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "Lunch", "a", "c", 1, 0) for k in "pq"]
    assert rows[1][0]["end"] == "2026-01-01T11:00:00Z"
    assert both[0].history("q") == both[1].history("q") == [
        {"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T11:00:00Z", "summary": "Lunch", "account": "a",
         "calendar": "c", "others": 1, "organised": False}]
    for led in both:  # p goes: the meeting stays for q; q goes: it goes too
        with led.transaction():
            led.replace_people(rows_of({"q": [dataclasses.replace(lunch, person="q")]}))
        assert led.conn.execute("SELECT count(*) FROM meetings").fetchone()[0] == 1
        with led.transaction():
            led.replace_people([])
        assert led.conn.execute("SELECT count(*) FROM meetings").fetchone()[0] == 0


def test_a_schema_1_ledger_is_upgraded_in_place(team_db: str) -> None:
    """The v0.1 migration runs on PostgreSQL too: keys become person ids, addresses stay linked."""
    led, drop = pg.member_ledger(team_db)
    try:
        conn = led.conn
        conn.execute("DROP VIEW IF EXISTS interactions")
        for table in ("persons", "person_links", "stories", "histories", "meta", "accounts", "collections", "objects",
                      "object_uids", "series", "starts", "occurrences", "contacts", "followups", "people", "runs",
                      "meetings", "met", "person_keys", "calendars", "terms", "touched", "stale", "attend", "titled",
                      "bases"):
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        led._run(ledger_mod._SCHEMA)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO people VALUES (?, ?)", ("ana@x", json.dumps({"emails": ["ana@x", "ana@y"]})))
        r = _row("u1")  # as schema 1 stored it (no user_due column yet)
        conn.execute("INSERT INTO followups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (r.uid, r.rule, r.key, "ana@x", r.name, json.dumps(r.emails), r.cycle, r.due.isoformat(),
                      r.summary, r.reason, r.account, r.state, r.written_on.isoformat(), None))
        # an event of schema 1: its object, series and occurrence rows
        conn.execute("INSERT INTO accounts(name, type) VALUES ('a', 'vdir')")
        conn.execute("INSERT INTO collections(id, account, remote_id, kind, name) VALUES (1, 'a', 'r', 'events', 'c')")
        conn.execute("INSERT INTO objects VALUES (1, 'e.ics', 'x', 'BEGIN:VCALENDAR', '[\"u1\"]')")
        conn.execute("INSERT INTO series VALUES (1, 'u1', 0, '2026-07-01T00:00:00Z')")
        occ = json.dumps(["u1", "", "2026-06-01T10:00:00Z", 0, 0, "Lunch", None, [], None, None])
        conn.execute("INSERT INTO occurrences VALUES (1, 'u1', '', '2026-06-01T10:00:00Z', ?)", (occ,))
        led._migrate(False)
        assert led.meta("schema_version") == str(ledger_mod.SCHEMA_VERSION)
        assert list(led.occurrences_of(["u1"])) == [(1, occ)]
        assert led.objects_with_uid(1, "u1") == [("e.ics", "BEGIN:VCALENDAR")]
        may = dt.datetime(2026, 5, 31, tzinfo=dt.timezone.utc)
        assert led.uids_starting([(may, may + dt.timedelta(days=2))]) == {"u1"}
        ident = led.identity()
        assert ident.ids == ["ana@x"]
        assert ident.links == {"email:ana@x": "ana@x", "email:ana@y": "ana@x"}
    finally:
        drop()


@pytest.mark.parametrize("read_after", [True, False])
def test_a_failed_statement_rolls_the_transaction_back_and_the_ledger_goes_on(
    both: tuple[Ledger, Ledger], read_after: bool
) -> None:
    """Also when the error only shows at COMMIT (writes in a pipeline are not waited for)."""
    for led in both:
        with pytest.raises(Exception, match=r"(?i)unique|constraint"), led.transaction():
            led.set_meta("kept", "no")
            led.conn.execute("INSERT INTO persons(id, seq) VALUES (?, ?)", ("a", 1))
            led.conn.execute("INSERT INTO persons(id, seq) VALUES (?, ?)", ("b", 1))  # seq is unique
            if read_after:
                led.meta("kept")
        assert led.meta("kept") is None
        with led.transaction():
            led.set_meta("kept", "yes")
        with led.transaction():
            pass  # an empty transaction
        assert led.meta("kept") == "yes" and led.identity().ids == []


def test_the_follow_ups_of_a_few_are_the_same_on_both(both: tuple[Ledger, Ledger]) -> None:
    """``followups_for`` (a union of three look-ups, ordered) and the count of a
    collection's objects answer the same on PostgreSQL."""
    rows = [dataclasses.replace(_row(f"u{i}", f"c{i}"), person=f"p{i % 4}", state=state,
                                written_on=dt.date(2026, 5, 1) + dt.timedelta(days=i), name=f"N{i % 3}",
                                due=dt.date(2026, 6, 1) + dt.timedelta(days=i % 2))
            for i, state in enumerate(["done", "open", "pending", "dismissed", "resolved", "done", "done", "open"])]
    for led in both:
        with led.transaction():
            for r in rows:
                led.put_followup(r)
            led.ensure_account("acc", "vdir")
            cid = led.collection("acc", "events", "r", "Cal").id
            for href in ("a", "b", "c"):
                led.put_object(cid, href, "e", "", [], None)
            led.delete_object(cid, "b")
    lite, pgl = both
    for ids, since in (([], dt.date(2026, 5, 7)), (["p0"], dt.date(2026, 5, 7)), (["p0", "p1", "p3"], dt.date(2026, 6, 1))):
        got = [r.uid for r in lite.followups_for(ids, since)]
        assert got == [r.uid for r in pgl.followups_for(ids, since)]
        assert got == [r.uid for r in lite.followups()
                       if r.person in ids or r.state in ("pending", "open") or r.written_on >= since]
    assert lite.etag_count(1) == pgl.etag_count(pgl.collections()[0].id) == 2
    assert lite.object_count("acc") == pgl.object_count("acc") == 2

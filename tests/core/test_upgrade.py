"""A schema-3 ledger (syncd 0.2) is upgraded in place to schema 4 and nothing it held is lost.

``tests/data/v1-world/ledger-v3.sqlite3`` is the v0.1 ledger of that world after one
``syncd sync`` of the last schema-3 syncd (2026-06-15T11:00:00Z); ``persons-v3.json``
is what ``syncd person --json`` showed for each person then.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from syncd import ledger as L
from syncd.ledger import SCHEMA_VERSION, Ledger
from tests.helpers import World, event

DATA = Path(__file__).resolve().parents[1] / "data" / "v1-world"
NOW = "2026-06-15T11:00:00Z"


def _v3_world(tmp_path: Path) -> World:
    """The world of tests/data with its schema-3 ledger, moved to ``tmp_path``."""
    for sub in ("calendars", "contacts", "tasks"):
        shutil.copytree(DATA / sub, tmp_path / sub)
    (tmp_path / "state").mkdir(mode=0o700)
    ledger = tmp_path / "state" / "ledger.sqlite3"
    shutil.copy(DATA / "ledger-v3.sqlite3", ledger)
    ledger.chmod(0o600)
    with sqlite3.connect(ledger) as db:  # the folders moved: say so, as a user's `mv` would not
        db.execute("UPDATE collections SET remote_id = replace(remote_id, '/tmp/syncd-v1', ?)", (str(tmp_path),))
        # A checkout gives the files its own mtimes: give them back the ones the ledger
        # noted (a vdir etag is mtime and size), as the files it was written from had.
        for folder, href, etag in db.execute(
                "SELECT c.remote_id, o.href, o.etag FROM objects o JOIN collections c ON c.id = o.collection"):
            mtime = int(etag.split("-")[0])
            os.utime(Path(folder) / href, ns=(mtime, mtime))
    w = World.__new__(World)
    World.__init__(w, tmp_path)
    return w


def _occurrences(rows: Any) -> list[tuple[int, Any]]:
    return sorted(((cid, L.occurrence_from(json.loads(text), 0)) for cid, text in rows),
                  key=lambda r: (r[0], r[1].uid, r[1].recurrence_id))


def _persons(w: World, names: list[str], now: str = NOW) -> dict[str, Any]:
    people = w.people(now=now)
    return {n: json.loads(w.run("person", people[n]["emails"][0], "--json", now=now).stdout) for n in names}


def test_a_v3_ledger_is_upgraded_in_place_and_every_person_keeps_their_history(tmp_path: Path) -> None:
    w = _v3_world(tmp_path)
    path = w.root / "state" / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
        rows = sorted(db.execute("SELECT * FROM interactions").fetchall())
        occurrences = _occurrences((cid, L.unpack(d)) for cid, d in db.execute("SELECT collection, data FROM occurrences"))
        objects = sorted(db.execute("SELECT collection, href, etag, data, uids FROM objects").fetchall())
    assert rows and occurrences
    files = sorted(p.name for p in w.tasks.iterdir())
    w.run("sync", now=NOW)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert sorted(db.execute("SELECT * FROM interactions").fetchall()) == rows  # the view, as schema 3 had them
        assert sorted(db.execute("SELECT collection, href, etag, data, uids FROM objects").fetchall()) == objects
        assert not db.execute("SELECT name FROM sqlite_master WHERE name LIKE '%_v3'").fetchall()
    led = Ledger.open(path, readonly=True)
    try:
        assert _occurrences(led.all_occurrences()) == occurrences
    finally:
        led.close()
    expected = json.loads((DATA / "persons-v3.json").read_text())
    assert _persons(w, sorted(expected)) == expected
    assert sorted(p.name for p in w.tasks.iterdir()) == files


def test_after_the_upgrade_a_pass_on_the_stored_histories_agrees_with_one_from_scratch(tmp_path: Path) -> None:
    w = _v3_world(tmp_path)
    w.run("sync", now=NOW)
    names = sorted(w.people(now=NOW))
    # a new meeting with Ana: derived on top of the histories the upgrade carried over
    ana = w.people(now=NOW)["Ana Lima"]["emails"][0]
    w.add_event("new", event("new", "20260616T100000", "Walk", [ana]))
    w.run("sync", now="2026-06-17T10:00:00Z")
    on_top = _persons(w, names, now="2026-06-17T10:00:00Z")
    assert on_top["Ana Lima"]["interactions"] == json.loads((DATA / "persons-v3.json").read_text())["Ana Lima"][
        "interactions"] + 1
    w.write_config(daily_limit=4)  # a changed config derives everyone from scratch
    w.run("sync", now="2026-06-17T10:00:00Z")
    assert _persons(w, names, now="2026-06-17T10:00:00Z") == on_top


def test_read_commands_on_a_v3_ledger_ask_for_a_sync_first(tmp_path: Path) -> None:
    w = _v3_world(tmp_path)
    proc = w.run("people", check=False)
    assert proc.returncode == 1 and "run `syncd sync`" in proc.stderr and "Traceback" not in proc.stderr


def test_an_upgrade_that_fails_half_way_leaves_the_v3_ledger_as_it_was(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.sqlite3"
    shutil.copy(DATA / "ledger-v3.sqlite3", path)

    def crash(*_: Any) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(Ledger, "_put_interactions", crash)  # after series and objects were copied
    with pytest.raises(RuntimeError, match="killed"):
        Ledger.open(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
        assert db.execute("SELECT count(*) FROM occurrences").fetchone()[0] > 0
        assert db.execute("SELECT count(*) FROM interactions").fetchone()[0] > 0
        assert not db.execute("SELECT name FROM sqlite_master WHERE name IN ('meetings', 'starts')").fetchall()


def _as_schema_5(db: sqlite3.Connection) -> None:
    """Undo schema 6: no count of objects, no indexes for a quiet pass."""
    db.execute("DROP INDEX series_stale")
    db.execute("DROP INDEX followups_state")
    db.execute("DROP INDEX followups_person")
    db.execute("DROP INDEX followups_written")
    db.execute("ALTER TABLE collections DROP COLUMN objects")
    db.execute("UPDATE meta SET value='5' WHERE key='schema_version'")


def test_a_schema_4_ledger_learns_who_is_due_when(tmp_path: Path) -> None:
    w = _v3_world(tmp_path)
    w.run("sync", now=NOW)
    path = w.root / "state" / "ledger.sqlite3"
    overdue = w.run("people", "--overdue", "--json", now=NOW).stdout
    with sqlite3.connect(path) as db:  # as schema 4 had it: no due column
        _as_schema_5(db)
        db.execute("DROP INDEX people_due")
        db.execute("ALTER TABLE people DROP COLUMN due")
        db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    led = Ledger.open(path)
    try:
        dues = dict(led.conn.execute("SELECT key, due FROM people").fetchall())
        assert dues == {k: e["due"] for k, e in led.people_keys()}
        assert any(dues.values()) and len(dues) >= 3
    finally:
        led.close()
    assert w.run("people", "--overdue", "--json", now=NOW).stdout == overdue
    assert json.loads(overdue)


def test_a_schema_5_ledger_learns_how_many_objects_each_collection_holds(tmp_path: Path) -> None:
    w = _v3_world(tmp_path)
    w.run("sync", now=NOW)
    path = w.root / "state" / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        _as_schema_5(db)
        counts = dict(db.execute("SELECT collection, count(*) FROM objects GROUP BY collection").fetchall())
    assert len(counts) >= 2 and all(counts.values())
    led = Ledger.open(path)
    try:
        assert {c.id: led.etag_count(c.id) for c in led.collections()} == {
            c.id: counts.get(c.id, 0) for c in led.collections()}
        plan = " ".join(r[3] for r in led.conn.execute(
            "EXPLAIN QUERY PLAN SELECT collection, uid FROM series WHERE recurring=1 AND expanded_until < 0"))
        assert "series_stale" in plan
    finally:
        led.close()
    before = w.people(now=NOW)
    w.add_event("late", event("late", "20260612T100000", "Late lunch", ["ana@example.com"]))
    w.run("sync", now=NOW)  # counted on from there
    with sqlite3.connect(path) as db:
        assert dict(db.execute("SELECT id, objects FROM collections").fetchall()) == {
            cid: n for cid, n in db.execute("SELECT c.id, count(o.href) FROM collections c "
                                           "LEFT JOIN objects o ON o.collection = c.id GROUP BY c.id")}
    assert w.people(now=NOW) != before

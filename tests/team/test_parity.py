"""The single-user engine tests, run again with the ledger on PostgreSQL.

The whole single-user suite drives the ``syncd`` command against SQLite; the in-process
engine tests are the ones whose ledger can be swapped: the Hypothesis state machines of
write-back (``tests/core/test_writeback_machine.py``) and of incremental sync
(``tests/core/test_sync_machine.py``), and the catch-up test after a failed pass. Here
they run unchanged but for the ledger, a member schema in PostgreSQL, through the same
``Ledger`` code (``syncd.pgledger``). The sync machine keeps comparing against a fresh
SQLite backfill, so it also checks that both databases end the same. A new day's pass,
which reads each person's stored meetings inside the store's transaction, runs on both
databases side by side and must store the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from syncd import derive
from syncd.engine import Engine
from syncd.ledger import Ledger
from tests.core import test_incremental, test_sync_machine, test_writeback_machine
from tests.team import pg

_DSN: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _database(pg_admin: str) -> Iterator[None]:
    dsn = pg.new_database(pg_admin)
    _DSN[:] = [dsn]
    yield
    pg.drop_database(pg_admin, dsn)


class PgWriteBack(test_writeback_machine.WriteBack):
    def __init__(self) -> None:
        super().__init__()
        self.ledger.close()
        self.ledger, self._drop = pg.member_ledger(_DSN[0])

    def teardown(self) -> None:
        self._drop()


class PgIncrementalSync(test_sync_machine.IncrementalSync):
    def __init__(self) -> None:
        super().__init__()
        self.ledger.close()
        self.ledger, self._drop = pg.member_ledger(_DSN[0])

    def teardown(self) -> None:
        self._drop()


TestPgWriteBack = PgWriteBack.TestCase
TestPgWriteBack.settings = settings(max_examples=8, stateful_step_count=15, deadline=None)
TestPgIncrementalSync = PgIncrementalSync.TestCase
TestPgIncrementalSync.settings = settings(max_examples=6, stateful_step_count=10, deadline=None)


def test_a_pass_after_a_failure_catches_up_on_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_writeback_machine, "WriteBack", PgWriteBack)
    test_writeback_machine.test_a_pass_after_a_failure_catches_up()


def test_a_new_day_read_person_by_person_stores_the_same_on_postgresql(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A new day's pass reads each person's stored meetings on their turn, inside the
    store's transaction on PostgreSQL too (its writes go in a pipeline): both ledgers
    end with the same people, stories, interactions and identities."""
    monkeypatch.setattr(derive, "_ON_TOP_BATCH", 3)
    lazily: list[object] = []  # the ledgers read person by person
    original = derive.Derive.changed

    def changed(self: derive.Derive) -> derive.Derivation:
        d = original(self)
        if d.stored is not None:
            lazily.append(self.ledger)
        return d

    monkeypatch.setattr(derive.Derive, "changed", changed)
    conf, store = test_incremental.new_day_world(tmp_path)
    now = dt.datetime(2026, 3, 20, 9, tzinfo=dt.timezone.utc)
    lite = Ledger.open(tmp_path / "ledger.sqlite3")
    post, drop = pg.member_ledger(_DSN[0])
    engines = [Engine(conf, led, now=lambda: now) for led in (lite, post)]
    try:
        for engine in engines:
            assert engine.run_pass().ok
        now += dt.timedelta(days=1)
        test_incremental.new_day_edits(store)
        for engine in engines:
            assert engine.run_pass().ok
        assert lazily == [lite, post]
        assert [p["due"] for p in post.people() if p["name"] == "Person 0"] == ["2026-04-02"]
        # (SQLite keeps the snapshot and stories packed, PostgreSQL as text: compared as read)
        keys = sorted(lite.people_ids())
        assert sorted(post.people_ids()) == keys and len(keys) == 7
        assert post.people() == lite.people()
        assert post.stories_of(keys) == lite.stories_of(keys)
        assert post.meetings_of(keys) == lite.meetings_of(keys)
        tables = ("interactions", "persons", "person_links", "attend", "titled")
        assert [test_incremental._tables(post)[t] for t in tables] == [test_incremental._tables(lite)[t] for t in tables]
    finally:
        for engine in engines:
            engine.close()
        lite.close()
        drop()

"""The single-user engine tests, run again with the ledger on PostgreSQL.

The whole single-user suite drives the ``syncd`` command against SQLite; the in-process
engine tests are the ones whose ledger can be swapped: the Hypothesis state machines of
write-back (``tests/core/test_writeback_machine.py``) and of incremental sync
(``tests/core/test_sync_machine.py``), and the catch-up test after a failed pass. Here
they run unchanged but for the ledger, a member schema in PostgreSQL, through the same
``Ledger`` code (``syncd.pgledger``). The sync machine keeps comparing against a fresh
SQLite backfill, so it also checks that both databases end the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.core import test_sync_machine, test_writeback_machine
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

"""How the core reads the contract: the end of a listing, its cursor, and refusing incomplete plugins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from syncd import config, plugins
from syncd.engine import Engine
from syncd.errors import TransientError, UnavailableError
from syncd.ledger import Ledger
from syncd_connectors.base import (
    EVENTS,
    ChangeBatch,
    Changes,
    Collection,
    Connector,
    RawObject,
    TaskSink,
)
from syncd_connectors.memory import MemoryConnector, MemoryStore
from tests.helpers import ME, event

NOW = dt.datetime(2026, 6, 20, 12, tzinfo=dt.UTC)


class Paged(MemoryConnector):
    """Lists in pages of one object and returns a cursor; ``break_after`` pages, then raises."""

    break_after: int | None = None

    def changes(self, collection: Collection, cursor: str | None, known: Mapping[str, str],
                since: dt.datetime) -> Changes:
        items = self.store.calendars.get(collection.id, {})
        for n, (href, (etag, data)) in enumerate(sorted(items.items())):
            if n == self.break_after:
                raise TransientError("the server hung up mid-listing")
            if known.get(href) != etag:
                yield ChangeBatch(upserts=[RawObject(href, etag, data)])
        return f"token-{len(items)}"


def _engine(tmp_path: Path) -> tuple[Engine, Ledger]:
    path = tmp_path / "c.toml"
    path.write_text(f'[syncd]\nme = ["{ME}"]\ntimezone = "Europe/Berlin"\nledger = "{tmp_path / "l.sqlite3"}"\n'
                    '[accounts.home]\ntype = "memory"\n')
    cfg = config.load(path)
    ledger = Ledger.open(cfg.ledger)
    return Engine(cfg, ledger, now=lambda: NOW, registry={"memory": Paged}), ledger


def test_cursor_is_stored_once_the_listing_ended_and_never_after_a_raise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    monkeypatch.setitem(MemoryConnector.stores, "home", store)
    for i in range(3):
        store.put(EVENTS, "cal", f"e{i}.ics", event(f"e{i}", f"2026061{i}T100000", f"Meeting {i}"))
    engine, ledger = _engine(tmp_path)
    monkeypatch.setattr(Paged, "break_after", 2)
    assert not engine.sync_account("home").ok
    [coll] = ledger.collections("home")
    assert coll.cursor is None  # nothing of the new cursor was committed
    assert sorted(ledger.etags(coll.id)) == ["e0.ics", "e1.ics"]  # the batches before the raise were
    engine.close()

    engine, ledger = _engine(tmp_path)
    monkeypatch.setattr(Paged, "break_after", None)
    assert engine.sync_account("home").ok
    [coll] = ledger.collections("home")
    assert coll.cursor == "token-3" and len(ledger.etags(coll.id)) == 3
    engine.close()


class Incomplete(TaskSink):
    """Claims the task sink role and forgets ``cancel_task``."""

    def list_tasks(self) -> dict[str, object]:  # type: ignore[override]
        return {}

    def put_task(self, task: object) -> None:  # type: ignore[override]
        pass


def test_an_incomplete_plugin_is_refused_when_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint("half", f"{__name__}:Incomplete", plugins.GROUP)
    with pytest.raises(UnavailableError, match=r"'half' .*incomplete: its roles require cancel_task\(\)"):
        plugins.Registry({"half": ep})["half"]
    with pytest.raises(TypeError, match="cancel_task"):
        Incomplete("a", {}, None)  # type: ignore[arg-type]


def test_a_capability_flag_without_its_role_fails_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"sets tasks = True without deriving from syncd_connectors\.base\.TaskSink"):
        class Flagged(Connector):  # the old way of claiming a role
            tasks = True

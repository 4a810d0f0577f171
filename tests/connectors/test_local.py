"""The connector contract against the in-process connectors: memory and vdir."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from syncd.context import AccountContext
from syncd_connectors.base import CONTACTS, EVENTS, Collection, Connector, TaskSpec
from syncd_connectors.memory import MemoryConnector, MemoryStore
from syncd_connectors.vdir import VdirConnector
from tests.connectors.contract import Backend, ConnectorContract, Listed, key, read, spec
from tests.helpers import event, vcard


def _text(kind: str, k: str, changed: bool = False) -> str:
    suffix = " changed" if changed else ""
    if kind == EVENTS:
        return event(k, "20240105T100000", f"Meeting {k}{suffix}")
    return vcard(f"Person {k}{suffix}", f"{k}@example.com", uid=k)


class MemoryBackend(Backend):
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        store.calendars["cal"] = {}
        store.addressbooks["book"] = {}
        self.ctx = AccountContext(account="a", state_dict={})

    def connector(self) -> Connector:
        return MemoryConnector("a", {"tasks_as": "todo"}, self.ctx)

    def collection(self, conn: Connector, kind: str) -> Collection:
        return Collection("cal" if kind == EVENTS else "book", "cal" if kind == EVENTS else "book", kind)

    def add(self, kind: str, key: str, changed: bool = False) -> None:
        self.store.put(kind, "cal" if kind == EVENTS else "book", key, _text(kind, key, changed))

    def modify(self, kind: str, key: str) -> None:
        self.add(kind, key, changed=True)

    def delete(self, kind: str, key: str) -> None:
        del (self.store.calendars["cal"] if kind == EVENTS else self.store.addressbooks["book"])[key]

    def task_count(self) -> int:
        return len(self.store.tasks)

    def sink_exists(self) -> bool:
        return bool(self.store.tasks)

    def task_summary(self, uid: str) -> str | None:
        return _summary(self.store.tasks.get(uid))

    def edit_task_summary(self, uid: str, summary: str) -> None:
        self.store.tasks[uid] = _edit_summary(self.store.tasks[uid], summary)


class VdirBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.cals = root / "calendars"
        self.book = root / "contacts" / "default"
        self.tasks = self.cals / "followups"  # matched by the calendars glob: must not be a source
        for d in (self.cals / "personal", self.cals / "work", self.book):
            d.mkdir(parents=True)
        self.ctx = AccountContext(account="a", state_dict={})

    def connector(self) -> Connector:
        return VdirConnector("a", {"calendars": [self.cals / "*"], "addressbooks": [self.book],
                                   "tasks": self.tasks, "tasks_as": "todo"}, self.ctx)

    def path(self, kind: str, key: str) -> Path:
        return self.cals / "personal" / f"{key}.ics" if kind == EVENTS else self.book / f"{key}.vcf"

    def collection(self, conn: Connector, kind: str) -> Collection:
        want = str((self.cals / "personal" if kind == EVENTS else self.book).absolute())
        [coll] = [c for c in conn.collections() if c.id == want]
        return coll

    def add(self, kind: str, key: str, changed: bool = False) -> None:
        self.path(kind, key).write_text(_text(kind, key, changed), newline="")

    def modify(self, kind: str, key: str) -> None:
        self.add(kind, key, changed=True)

    def delete(self, kind: str, key: str) -> None:
        self.path(kind, key).unlink()

    def task_count(self) -> int:
        return len(list(self.tasks.glob("*.ics"))) if self.tasks.exists() else 0

    def sink_exists(self) -> bool:
        return self.tasks.exists()

    def task_summary(self, uid: str) -> str | None:
        path = self.tasks / f"{uid}.ics"
        return _summary(path.read_text() if path.exists() else None)

    def edit_task_summary(self, uid: str, summary: str) -> None:
        path = self.tasks / f"{uid}.ics"
        path.write_bytes(_edit_summary(path.read_bytes().decode(), summary).encode())


def _summary(text: str | None) -> str | None:
    if text is None:
        return None
    return next((line[8:] for line in text.splitlines() if line.startswith("SUMMARY:")), None)


def _edit_summary(text: str, summary: str) -> str:
    return "".join(f"SUMMARY:{summary}\r\n" if line.startswith("SUMMARY:") else line
                   for line in text.splitlines(keepends=True))


class TestMemory(ConnectorContract):
    @pytest.fixture
    def backend(self, monkeypatch: pytest.MonkeyPatch) -> Backend:
        store = MemoryStore()
        monkeypatch.setitem(MemoryConnector.stores, "a", store)
        return MemoryBackend(store)


class TestVdir(ConnectorContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return VdirBackend(tmp_path)


# -- vdir only: what the contract cannot say for every service ------------------------

# counting file opens (an audit hook cannot be removed: install once, switch on demand)
_OPENS: list[str] = []
_WATCH: list[str] = []


def _audit(name: str, args: tuple[Any, ...]) -> None:
    if name == "open" and _WATCH and args and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        if any(path.startswith(w) for w in _WATCH) and not os.path.isdir(path):  # a folder is listed, not read
            _OPENS.append(path)


sys.addaudithook(_audit)


def test_vdir_reads_only_changed_files(tmp_path: Path) -> None:
    backend = VdirBackend(tmp_path)
    keys = [key() for _ in range(3)]
    for k in keys:
        backend.add(EVENTS, k)
    conn = backend.connector()
    coll = backend.collection(conn, EVENTS)
    first = read(conn, coll, None, {})
    known = {h: o.etag for h, o in first.upserts.items()}
    _OPENS.clear()
    _WATCH.append(str(tmp_path))
    try:
        assert read(conn, coll, first.cursor, known).upserts == {}
        assert _OPENS == []  # an unchanged folder is listed and stat'ed, never read
        backend.modify(EVENTS, keys[1])
        _OPENS.clear()
        nxt: Listed = read(conn, coll, None, known)
    finally:
        _WATCH.clear()
    assert [Path(p).name for p in _OPENS] == [f"{keys[1]}.ics"]
    assert list(nxt.upserts) == [f"{keys[1]}.ics"]


def test_vdir_collections_leave_the_tasks_folder_out(tmp_path: Path) -> None:
    backend = VdirBackend(tmp_path)
    conn = backend.connector()
    conn.put_task(spec("syncd-t1"))
    kinds = sorted((c.kind, c.name) for c in conn.collections())
    assert kinds == [(CONTACTS, "default"), (EVENTS, "personal"), (EVENTS, "work")]


def test_vdir_batches_a_big_folder(tmp_path: Path) -> None:
    backend = VdirBackend(tmp_path)
    for i in range(450):
        (backend.cals / "work" / f"x{i:03d}.ics").write_text(event(f"x{i}", "20260610T100000"), newline="")
    conn = backend.connector()
    coll = next(c for c in conn.collections() if c.name == "work")
    batches = list(conn.changes(coll, None, {}, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
    assert len(batches) == 3 and batches[0].total == 450
    assert sum(len(b.upserts) for b in batches) == 450


def test_vdir_foreign_task_is_left_alone(tmp_path: Path) -> None:
    backend = VdirBackend(tmp_path)
    backend.tasks.mkdir(parents=True)
    foreign = backend.tasks / "my-own-todo.ics"
    foreign.write_text("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//someone else//EN\r\nBEGIN:VTODO\r\n"
                       "UID:my-own-todo\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Buy milk\r\n"
                       "STATUS:NEEDS-ACTION\r\nEND:VTODO\r\nEND:VCALENDAR\r\n", newline="")
    before = foreign.read_bytes()
    conn = backend.connector()
    conn.put_task(spec("syncd-t1"))
    assert list(conn.list_tasks()) == ["syncd-t1"]  # the user's own VTODO is not ours
    conn.cancel_task("my-own-todo")  # never touched, even when asked by its uid
    assert foreign.read_bytes() == before


def test_vdir_leftover_temp_file_is_removed(tmp_path: Path) -> None:
    backend = VdirBackend(tmp_path)
    backend.tasks.mkdir(parents=True)
    leftover = backend.tasks / ".syncd-0123.ics.tmp"
    leftover.write_text("BEGIN:VCALENDAR\r\n")  # a write cut short by a crash
    conn = backend.connector()
    assert conn.list_tasks() == {}
    assert not leftover.exists()
    conn.put_task(TaskSpec("syncd-t1", "first_meeting", "k", "s", "d", dt.date(2026, 6, 16)))
    assert sorted(p.name for p in backend.tasks.iterdir()) == ["syncd-t1.ics"]

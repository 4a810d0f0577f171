"""The connector contract (``syncd_connectors.base``) for the in-process connectors: vdir and memory.

``tests/caldav/test_contract.py`` has no base class to subclass (its tests are bound to
a server and a proxy), so this is a small suite of its own, parametrized over one
``Impl`` per connector: each says how to seed a collection and how to reach behind the
connector's back to the sink, as a user (or another client) would.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icalendar
import pytest

from syncd.context import AccountContext
from syncd_connectors.base import CONTACTS, EVENTS, ChangeBatch, Collection, Connector, TaskSpec
from syncd_connectors.memory import MemoryConnector, MemoryStore
from syncd_connectors.vdir import VdirConnector
from tests.helpers import event, vcard

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FOREIGN = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//someone else//EN\r\nBEGIN:VTODO\r\n"
    "UID:my-own-todo\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Buy milk\r\nSTATUS:NEEDS-ACTION\r\n"
    "END:VTODO\r\nEND:VCALENDAR\r\n"
)

# -- counting file opens (an audit hook cannot be removed: install once, switch on demand)
_OPENS: list[str] = []
_WATCH: list[str] = []


def _audit(name: str, args: tuple[Any, ...]) -> None:
    if name == "open" and _WATCH and args and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        if any(path.startswith(w) for w in _WATCH):
            _OPENS.append(path)


sys.addaudithook(_audit)


class Impl:
    """How a test reaches one connector kind's storage."""

    kind = ""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ctx = AccountContext(account="a", state_dict={})

    def connector(self) -> Connector:
        raise NotImplementedError

    def add(self, kind: str, coll: str, name: str, text: str) -> None:
        raise NotImplementedError

    def remove(self, kind: str, coll: str, name: str) -> None:
        raise NotImplementedError

    def task(self, uid: str) -> str | None:
        raise NotImplementedError

    def set_task(self, uid: str, text: str) -> None:
        raise NotImplementedError

    def delete_task(self, uid: str) -> None:
        raise NotImplementedError

    def add_foreign(self, text: str) -> None:
        raise NotImplementedError

    def foreign(self) -> bytes:
        raise NotImplementedError

    def task_count(self) -> int:
        raise NotImplementedError


class VdirImpl(Impl):
    kind = "vdir"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.cals = root / "calendars"
        self.books = root / "contacts"
        self.tasks = self.cals / "followups"  # matched by the calendars glob: must not be a source
        for d in (self.cals / "personal", self.cals / "work", self.books / "default"):
            d.mkdir(parents=True)

    def connector(self) -> Connector:
        opts = {"calendars": [self.cals / "*"], "addressbooks": [self.books / "default"],
                "tasks": self.tasks, "tasks_as": "todo"}
        return VdirConnector("a", opts, self.ctx)

    def _folder(self, kind: str, coll: str) -> Path:
        return (self.cals if kind == EVENTS else self.books / "default").joinpath(
            coll if kind == EVENTS else "")

    def add(self, kind: str, coll: str, name: str, text: str) -> None:
        suffix = ".ics" if kind == EVENTS else ".vcf"
        (self._folder(kind, coll) / f"{name}{suffix}").write_text(text, newline="")

    def remove(self, kind: str, coll: str, name: str) -> None:
        suffix = ".ics" if kind == EVENTS else ".vcf"
        (self._folder(kind, coll) / f"{name}{suffix}").unlink()

    def task(self, uid: str) -> str | None:
        path = self.tasks / f"{uid}.ics"
        return path.read_text() if path.exists() else None

    def set_task(self, uid: str, text: str) -> None:
        (self.tasks / f"{uid}.ics").write_text(text, newline="")

    def delete_task(self, uid: str) -> None:
        (self.tasks / f"{uid}.ics").unlink()

    def add_foreign(self, text: str) -> None:
        self.tasks.mkdir(parents=True, exist_ok=True)
        (self.tasks / "my-own-todo.ics").write_text(text, newline="")

    def foreign(self) -> bytes:
        return (self.tasks / "my-own-todo.ics").read_bytes()

    def task_count(self) -> int:
        return len([p for p in self.tasks.glob("*.ics") if p.name != "my-own-todo.ics"])

    def coll_id(self, kind: str, coll: str) -> str:
        return str(self._folder(kind, coll).absolute())


class MemoryImpl(Impl):
    kind = "memory"

    def __init__(self, root: Path, store: MemoryStore) -> None:
        super().__init__(root)
        self.store = store
        store.calendars.update(personal={}, work={})
        store.addressbooks["default"] = {}

    def connector(self) -> Connector:
        return MemoryConnector("a", {"tasks_as": "todo"}, self.ctx)

    def add(self, kind: str, coll: str, name: str, text: str) -> None:
        self.store.put(kind, coll if kind == EVENTS else "default", name, text)

    def remove(self, kind: str, coll: str, name: str) -> None:
        table = self.store.calendars if kind == EVENTS else self.store.addressbooks
        del table[coll if kind == EVENTS else "default"][name]

    def task(self, uid: str) -> str | None:
        return self.store.tasks.get(uid)

    def set_task(self, uid: str, text: str) -> None:
        self.store.tasks[uid] = text

    def delete_task(self, uid: str) -> None:
        del self.store.tasks[uid]

    def add_foreign(self, text: str) -> None:
        self.store.tasks["my-own-todo"] = text

    def foreign(self) -> bytes:
        return self.store.tasks["my-own-todo"].encode()

    def task_count(self) -> int:
        return len([k for k in self.store.tasks if k != "my-own-todo"])

    def coll_id(self, kind: str, coll: str) -> str:
        return coll if kind == EVENTS else "default"


@pytest.fixture(params=["vdir", "memory"])
def impl(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Impl]:
    if request.param == "vdir":
        yield VdirImpl(tmp_path)
    else:
        store = MemoryStore()
        monkeypatch.setitem(MemoryConnector.stores, "a", store)
        yield MemoryImpl(tmp_path, store)


def drain(conn: Connector, coll: Collection, known: dict[str, str]) -> tuple[list[ChangeBatch], dict[str, str], list[str]]:
    batches = list(conn.changes(coll, None, known, SINCE))
    assert batches and batches[-1].done and not any(b.done for b in batches[:-1])
    ups = {o.href: o.etag for b in batches for o in b.upserts}
    return batches, ups, [h for b in batches for h in b.deletes]


def by_id(conn: Connector, impl: Impl, kind: str, coll: str) -> Collection:
    want = impl.coll_id(kind, coll)  # type: ignore[attr-defined]
    [col] = [c for c in conn.collections() if c.id == want]
    assert col.kind == kind
    return col


def spec(uid: str, summary: str = "Follow up with Ana Lima", due: dt.date = dt.date(2026, 6, 16)) -> TaskSpec:
    return TaskSpec(uid=uid, rule="first_meeting", key=f"first_meeting:{uid}", summary=summary,
                    description="first met 15 Jun 2026 (Coffee)", due=due)


def todo(text: str) -> icalendar.cal.Component:
    return next(c for c in icalendar.Calendar.from_ical(text).walk() if c.name == "VTODO")


# -- sources -------------------------------------------------------------------


def test_collections(impl: Impl) -> None:
    conn = impl.connector()
    cols = conn.collections()
    kinds = sorted((c.kind, c.name) for c in cols)
    assert kinds == [(CONTACTS, "default"), (EVENTS, "personal"), (EVENTS, "work")]
    assert len({c.id for c in cols}) == 3
    assert not any(c.name == "followups" for c in cols)  # the task sink is never a source
    assert conn.events and conn.contacts and conn.tasks


def test_changes_full_then_nothing_then_changed_and_deleted(impl: Impl) -> None:
    for i in range(3):
        impl.add(EVENTS, "personal", f"e{i}", event(f"e{i}", f"2026061{i}T100000Z", f"Meeting {i}"))
    impl.add(CONTACTS, "", "bob", vcard("Bob Stone", "bob@example.com"))
    conn = impl.connector()
    cal = by_id(conn, impl, EVENTS, "personal")
    _, ups, gone = drain(conn, cal, {})
    assert len(ups) == 3 and gone == [] and all(ups.values())
    book = by_id(conn, impl, CONTACTS, "default")
    [batch], cards, _ = drain(conn, book, {})
    assert len(cards) == 1 and "BEGIN:VCARD" in batch.upserts[0].data
    assert drain(conn, by_id(conn, impl, EVENTS, "work"), {})[1] == {}

    _WATCH.append(str(impl.root))
    _OPENS.clear()
    try:
        _, again, gone = drain(conn, cal, dict(ups))
    finally:
        _WATCH.clear()
    assert again == {} and gone == []
    assert _OPENS == []  # an unchanged folder is listed and stat'ed, never read

    [changed] = [h for h in ups if h.startswith("e1")]
    impl.add(EVENTS, "personal", "e1", event("e1", "20260611T100000Z", "Meeting 1, moved to a longer title"))
    [deleted] = [h for h in ups if h.startswith("e2")]
    impl.remove(EVENTS, "personal", "e2")
    _WATCH.append(str(impl.root))
    try:
        batches, ups2, gone = drain(conn, cal, dict(ups))
    finally:
        _WATCH.clear()
    if impl.kind == "vdir":  # the hook does see reads: exactly the changed file
        assert [Path(p).name for p in _OPENS] == [changed]
    assert list(ups2) == [changed] and ups2[changed] != ups[changed]
    assert "longer title" in next(o.data for b in batches for o in b.upserts)
    assert gone == [deleted]


def test_changes_in_batches(impl: Impl) -> None:
    for i in range(450):
        impl.add(EVENTS, "work", f"x{i:03d}", event(f"x{i}", "20260610T100000Z"))
    conn = impl.connector()
    batches, ups, _ = drain(conn, by_id(conn, impl, EVENTS, "work"), {})
    assert len(ups) == 450
    assert sum(len(b.upserts) for b in batches) == 450  # nothing twice


# -- task sink -------------------------------------------------------------------


def test_put_task_twice_is_one_object(impl: Impl) -> None:
    conn = impl.connector()
    conn.put_task(spec("t1"))
    conn.put_task(spec("t1", summary="Something else", due=dt.date(2026, 7, 1)))  # a retry
    assert impl.task_count() == 1
    text = impl.task("t1") or ""
    comp = todo(text)
    assert str(comp["summary"]) == "Follow up with Ana Lima"
    assert "DUE;VALUE=DATE:20260616" in text
    assert str(comp["x-syncd-key"]) == "first_meeting:t1" and str(comp["x-syncd-rule"]) == "first_meeting"
    assert str(comp["description"]) == "first met 15 Jun 2026 (Coffee)"
    assert list(conn.list_tasks()) == ["t1"]


def test_cancel_keeps_the_users_summary(impl: Impl) -> None:
    conn = impl.connector()
    conn.put_task(spec("t1"))
    edited = (impl.task("t1") or "").replace("SUMMARY:Follow up with Ana Lima", "SUMMARY:Call Ana about the job")
    impl.set_task("t1", edited)
    conn.cancel_task("t1")
    comp = todo(impl.task("t1") or "")
    assert str(comp["status"]) == "CANCELLED"
    assert str(comp["summary"]) == "Call Ana about the job"
    assert comp.decoded("due") == dt.date(2026, 6, 16)
    assert conn.list_tasks()["t1"].cancelled
    conn.cancel_task("t1")  # already cancelled, and gone: both are no-ops
    conn.cancel_task("never-written")
    assert impl.task_count() == 1


def test_list_tasks_sees_completion_and_deletion_ignores_foreign(impl: Impl) -> None:
    impl.add_foreign(FOREIGN)
    before = impl.foreign()
    conn = impl.connector()
    for uid in ("t1", "t2", "t3"):
        conn.put_task(spec(uid))
    assert sorted(conn.list_tasks()) == ["t1", "t2", "t3"]
    impl.set_task("t1", (impl.task("t1") or "").replace(
        "STATUS:NEEDS-ACTION", "STATUS:COMPLETED\r\nCOMPLETED:20260616T080000Z"))
    impl.set_task("t2", (impl.task("t2") or "").replace("STATUS:NEEDS-ACTION", "PERCENT-COMPLETE:100"))
    impl.delete_task("t3")
    tasks = impl.connector().list_tasks()
    assert sorted(tasks) == ["t1", "t2"]  # the user's own VTODO is not ours
    assert tasks["t1"].completed and tasks["t1"].completed_at == dt.datetime(2026, 6, 16, 8, tzinfo=dt.UTC)
    assert tasks["t2"].completed and tasks["t2"].completed_at is None
    assert not tasks["t1"].cancelled
    conn.cancel_task("my-own-todo")  # never touched, even when asked by its uid
    conn.put_task(spec("t4"))
    assert impl.foreign() == before


def test_leftover_temp_file_is_removed(tmp_path: Path) -> None:
    impl = VdirImpl(tmp_path)
    impl.tasks.mkdir(parents=True)
    leftover = impl.tasks / f".syncd-{uuid.uuid4().hex}.ics.tmp"
    leftover.write_text("BEGIN:VCALENDAR\r\n")  # a write cut short by a crash
    conn = impl.connector()
    assert conn.list_tasks() == {}
    assert not leftover.exists()
    conn.put_task(spec("t1"))
    assert sorted(p.name for p in impl.tasks.iterdir()) == ["t1.ics"]

"""The connector contract (``syncd_connectors.base``) as one test class, run against every backend.

A test module subclasses ``ConnectorContract`` and provides a ``backend`` fixture: a
``Backend`` that builds connectors (one per pass, sharing persisted state) and changes
the service's data behind the connector's back, as a user or another client would.
Listings are read the way the core reads them: through ``ChangeStream`` and the core's
guard against emptied collections (``syncd.ingest._believed``).
"""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from syncd.ingest import _believed
from syncd_connectors.base import (
    CONTACTS,
    EVENTS,
    AccountError,
    ChangeStream,
    Collection,
    Connector,
    ContactSource,
    EventSource,
    RawObject,
    TaskSink,
    TaskSpec,
    missing_methods,
)

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class Backend(abc.ABC):
    """One service as a test reaches it. Objects are named by a short unique ``key`` that
    their text carries (an event's summary ``Meeting <key>``, a card's name ``Person <key>``)."""

    #: whether a cancelled task stays in the sink (Google Tasks deletes it instead)
    cancel_keeps: ClassVar[bool] = True

    @abc.abstractmethod
    def connector(self) -> Connector:
        """A new connector on the service (a new pass), sharing the account's state."""

    @abc.abstractmethod
    def collection(self, conn: Connector, kind: str) -> Collection:
        """The test's calendar (EVENTS) or address book (CONTACTS), as ``conn`` lists it."""

    @abc.abstractmethod
    def add(self, kind: str, key: str) -> None:
        """Create an event or a card named by ``key``."""

    @abc.abstractmethod
    def modify(self, kind: str, key: str) -> None:
        """Change the object of ``key`` (its text gains ``changed``)."""

    @abc.abstractmethod
    def delete(self, kind: str, key: str) -> None:
        """Delete the object of ``key``."""

    @abc.abstractmethod
    def task_count(self) -> int:
        """How many objects the task sink holds (0 when it does not exist)."""

    @abc.abstractmethod
    def sink_exists(self) -> bool:
        """Whether the task list, calendar or folder exists (or holds anything)."""

    def task_summary(self, uid: str) -> str | None:
        """The summary the sink shows for task ``uid`` (only when ``cancel_keeps``)."""
        raise NotImplementedError

    def edit_task_summary(self, uid: str, summary: str) -> None:
        """Change a task's summary as the user would (only when ``cancel_keeps``)."""
        raise NotImplementedError


@dataclass
class Listed:
    """Everything one listing gave the core."""

    upserts: dict[str, RawObject] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    cursor: str | None = None

    def href(self, key: str) -> str:
        [found] = [h for h, o in self.upserts.items() if key in o.data]
        return found


def read(conn: Connector, coll: Collection, cursor: str | None, known: dict[str, str],
         allow_empty: bool = False) -> Listed:
    """One listing, read as the core reads it; an href never comes twice."""
    stream = ChangeStream(conn.changes(coll, cursor, known, SINCE))
    out = Listed()
    for batch in _believed(stream, known, "acct", coll, allow_empty):
        for obj in batch.upserts:
            assert obj.href not in out.upserts, f"{obj.href} listed twice"
            out.upserts[obj.href] = obj
        out.deletes += batch.deletes
    assert stream.ended
    out.cursor = stream.cursor
    return out


def key() -> str:
    return "k" + uuid.uuid4().hex[:10]


def spec(uid: str, summary: str = "Follow up with Ana Lima", due: dt.date = dt.date(2026, 6, 16)) -> TaskSpec:
    return TaskSpec(uid=uid, rule="first_meeting", key=f"first_meeting:{uid}", summary=summary,
                    description="first met 15 Jun 2026 (Coffee)", due=due)


KINDS = pytest.mark.parametrize("kind", [EVENTS, CONTACTS])
BEGIN = {EVENTS: "BEGIN:VCALENDAR", CONTACTS: "BEGIN:VCARD"}


class ConnectorContract:
    """What every connector promises the core; subclasses provide ``backend``."""

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a test module provides the backend fixture")

    def _seeded(self, backend: Backend, kind: str, n: int = 3) -> tuple[list[str], Collection, Listed]:
        keys = [key() for _ in range(n)]
        for k in keys:
            backend.add(kind, k)
        conn = backend.connector()
        coll = self.collection(backend, conn, kind)
        return keys, coll, read(conn, coll, None, {})

    @staticmethod
    def collection(backend: Backend, conn: Connector, kind: str) -> Collection:
        coll = backend.collection(conn, kind)
        assert coll.kind == kind and coll in conn.collections()
        return coll

    @staticmethod
    def known(*listings: Listed) -> dict[str, str]:
        out: dict[str, str] = {}
        for listing in listings:
            out.update({h: o.etag for h, o in listing.upserts.items()})
            for h in listing.deletes:
                out.pop(h, None)
        return out

    # -- the shape -------------------------------------------------------------------

    def test_roles_are_complete(self, backend: Backend) -> None:
        conn = backend.connector()
        assert missing_methods(type(conn)) == []
        assert conn.events == isinstance(conn, EventSource)
        assert conn.contacts == isinstance(conn, ContactSource)
        assert conn.tasks == isinstance(conn, TaskSink)

    # -- sources ---------------------------------------------------------------------

    @KINDS
    def test_first_listing_yields_every_object_once(self, backend: Backend, kind: str) -> None:
        keys, _, first = self._seeded(backend, kind)
        assert len(first.upserts) == 3 and first.deletes == []
        assert all(first.href(k) for k in keys)  # each object once (``read`` checks no href twice)
        assert all(o.etag and BEGIN[kind] in o.data for o in first.upserts.values())

    @KINDS
    def test_unchanged_listing_yields_nothing_and_the_cursor_round_trips(self, backend: Backend, kind: str) -> None:
        _, coll, first = self._seeded(backend, kind)
        again = read(backend.connector(), coll, first.cursor, self.known(first))  # the next pass
        assert again.upserts == {} and again.deletes == []
        third = read(backend.connector(), coll, again.cursor, self.known(first))
        assert third.upserts == {} and third.deletes == []

    @KINDS
    def test_modified_object_comes_back_with_a_new_etag(self, backend: Backend, kind: str) -> None:
        keys, coll, first = self._seeded(backend, kind)
        backend.modify(kind, keys[1])
        nxt = read(backend.connector(), coll, first.cursor, self.known(first))
        href = first.href(keys[1])
        assert list(nxt.upserts) == [href] and nxt.deletes == []
        assert nxt.upserts[href].etag != first.upserts[href].etag and "changed" in nxt.upserts[href].data
        after = read(backend.connector(), coll, nxt.cursor, self.known(first, nxt))
        assert after.upserts == {} and after.deletes == []

    @KINDS
    def test_deleted_object_is_reported_deleted(self, backend: Backend, kind: str) -> None:
        keys, coll, first = self._seeded(backend, kind)
        backend.delete(kind, keys[0])
        new = key()
        backend.add(kind, new)
        nxt = read(backend.connector(), coll, first.cursor, self.known(first))
        assert nxt.deletes == [first.href(keys[0])]
        assert [o for o in nxt.upserts.values() if new in o.data] and len(nxt.upserts) == 1
        after = read(backend.connector(), coll, nxt.cursor, self.known(first, nxt))
        assert after.upserts == {} and after.deletes == []

    @KINDS
    def test_emptied_collection_is_reported_and_not_believed(self, backend: Backend, kind: str) -> None:
        keys, coll, first = self._seeded(backend, kind, n=2)
        for k in keys:
            backend.delete(kind, k)
        known = self.known(first)
        with pytest.raises(AccountError, match="--allow-empty acct"):
            read(backend.connector(), coll, first.cursor, known)
        accepted = read(backend.connector(), coll, first.cursor, known, allow_empty=True)
        assert sorted(accepted.deletes) == sorted(known) and accepted.upserts == {}

    # -- task sink -------------------------------------------------------------------

    def test_list_tasks_creates_nothing_and_reads_back_what_was_put(self, backend: Backend) -> None:
        conn = backend.connector()
        assert conn.list_tasks() == {} and backend.connector().list_tasks() == {}
        assert not backend.sink_exists()  # a read (a dry run reads too) creates nothing
        conn.put_task(spec("syncd-t1"))
        conn.put_task(spec("syncd-t2", due=dt.date(2026, 7, 1)))
        tasks = backend.connector().list_tasks()
        assert sorted(tasks) == ["syncd-t1", "syncd-t2"]
        assert tasks["syncd-t2"].due == dt.date(2026, 7, 1)
        assert not any(t.completed or t.cancelled for t in tasks.values())
        assert backend.task_count() == 2  # reading created nothing

    def test_put_task_is_idempotent(self, backend: Backend) -> None:
        conn = backend.connector()
        conn.put_task(spec("syncd-t1"))
        conn.put_task(spec("syncd-t1", summary="Something else", due=dt.date(2026, 7, 1)))  # a retry
        backend.connector().put_task(spec("syncd-t1"))  # a rerun after a crash
        assert backend.task_count() == 1
        assert list(backend.connector().list_tasks()) == ["syncd-t1"]

    def test_cancel_resolves_the_task_and_keeps_the_users_edits(self, backend: Backend) -> None:
        conn = backend.connector()
        conn.put_task(spec("syncd-t1"))
        conn.put_task(spec("syncd-t2"))
        if backend.cancel_keeps:
            backend.edit_task_summary("syncd-t1", "Call Ana about the job")
        conn.cancel_task("syncd-t1")
        conn.cancel_task("syncd-t1")  # twice: nothing more happens
        conn.cancel_task("syncd-never-written")  # not there: nothing to do
        tasks = backend.connector().list_tasks()
        assert not tasks["syncd-t2"].cancelled
        if backend.cancel_keeps:
            assert tasks["syncd-t1"].cancelled and backend.task_count() == 2
            assert backend.task_summary("syncd-t1") == "Call Ana about the job"
        else:
            assert "syncd-t1" not in tasks and backend.task_count() == 1

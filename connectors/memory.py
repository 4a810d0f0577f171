"""An in-memory connector: the test double of every role, shipped with the package.

Accounts of type ``memory`` share ``MemoryStore`` objects by account name
(``MemoryConnector.stores``), so a test seeds a store, runs the engine in-process and
inspects what was written. It counts its calls like a server counts requests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from syncd_connectors.base import (
    CONTACTS,
    EVENTS,
    ChangeBatch,
    Changes,
    Collection,
    ContactSource,
    EventSource,
    Option,
    RawObject,
    RemoteTask,
    TaskSink,
    TaskSpec,
    absent,
    cancelled_task_ical,
    read_task_ical,
    task_ical,
)


@dataclass
class MemoryStore:
    """Collections of objects (id -> href -> (etag, data)) and a task list (uid -> data)."""

    calendars: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    addressbooks: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    me: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    fail: Exception | None = None
    _rev: int = 0

    def put(self, kind: str, collection: str, href: str, data: str) -> None:
        """Add or change an object."""
        self._rev += 1
        table = self.calendars if kind == EVENTS else self.addressbooks
        table.setdefault(collection, {})[href] = (f"e{self._rev}", data)


class MemoryConnector(EventSource, ContactSource, TaskSink):
    """Serves a ``MemoryStore``; follow-ups are kept as iCalendar text."""

    options: ClassVar[dict[str, Option]] = {"tasks_as": Option("str", "todo", "todo or event")}
    stores: ClassVar[dict[str, MemoryStore]] = {}

    def __init__(self, name: str, options: Mapping[str, Any], ctx: Any) -> None:
        super().__init__(name, options, ctx)
        self.store = self.stores.setdefault(name, MemoryStore())

    def _call(self, what: str) -> None:
        self.store.calls.append(what)
        if self.store.fail is not None:
            raise self.store.fail

    def self_addresses(self) -> set[str]:
        """The store's ``me``."""
        return set(self.store.me)

    def collections(self) -> list[Collection]:
        """One collection per calendar and address book of the store."""
        self._call("collections")
        return [Collection(c, c, EVENTS) for c in self.store.calendars] + [
            Collection(c, c, CONTACTS) for c in self.store.addressbooks
        ]

    def changes(self, collection: Collection, cursor: str | None, known: Mapping[str, str],
                since: dt.datetime) -> Changes:
        """Objects whose etag differs from ``known``; hrefs gone (a whole listing: no cursor)."""
        self._call(f"changes {collection.id}")
        table = self.store.calendars if collection.kind == EVENTS else self.store.addressbooks
        items = table.get(collection.id, {})
        ups = [RawObject(h, e, d) for h, (e, d) in sorted(items.items()) if known.get(h) != e]
        gone = absent(known, items)
        if ups or gone:
            yield ChangeBatch(upserts=ups, deletes=gone)
        return None

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Tasks the store holds that syncd wrote."""
        self._call("list_tasks")
        out = {}
        for data in self.store.tasks.values():
            task = read_task_ical(data)
            if task is not None:
                out[task.uid] = task
        return out

    def put_task(self, task: TaskSpec) -> None:
        """Create unless present."""
        self._call(f"put_task {task.uid}")
        if task.uid not in self.store.tasks:
            self.store.tasks[task.uid] = task_ical(task, self.opts.get("tasks_as") == "event")

    def cancel_task(self, uid: str) -> None:
        """STATUS:CANCELLED."""
        self._call(f"cancel_task {uid}")
        if uid in self.store.tasks:
            new = cancelled_task_ical(self.store.tasks[uid])
            if new is not None:
                self.store.tasks[uid] = new

"""An in-memory connector: the test double of every role, shipped with the package.

Accounts of type ``memory`` share ``MemoryStore`` objects by account name
(``MemoryConnector.stores``), so a test seeds a store, runs the engine in-process and
inspects what was written. It counts its calls like a server counts requests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from syncd import clock, taskical
from syncd.config import Option
from syncd_connectors.base import (
    CONTACTS,
    EVENTS,
    ChangeBatch,
    Collection,
    Connector,
    RawObject,
    RemoteTask,
    TaskSpec,
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


class MemoryConnector(Connector):
    """Serves a ``MemoryStore``; follow-ups are kept as iCalendar text."""

    options: ClassVar[dict[str, Option]] = {"tasks_as": Option("str", "todo", "todo or event")}
    events = True
    contacts = True
    tasks = True
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
                since: dt.datetime) -> Iterator[ChangeBatch]:
        """Objects whose etag differs from ``known``; hrefs gone."""
        self._call(f"changes {collection.id}")
        table = self.store.calendars if collection.kind == EVENTS else self.store.addressbooks
        items = table.get(collection.id, {})
        ups = [RawObject(h, e, d) for h, (e, d) in sorted(items.items()) if known.get(h) != e]
        yield ChangeBatch(upserts=ups, deletes=sorted(set(known) - set(items)), done=True)

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Tasks the store holds that syncd wrote."""
        self._call("list_tasks")
        out = {}
        for data in self.store.tasks.values():
            task = taskical.read(data)
            if task is not None:
                out[task.uid] = task
        return out

    def put_task(self, task: TaskSpec) -> None:
        """Create unless present."""
        self._call(f"put_task {task.uid}")
        if task.uid not in self.store.tasks:
            self.store.tasks[task.uid] = taskical.render(task, clock.now(), self.opts.get("tasks_as") == "event")

    def cancel_task(self, uid: str) -> None:
        """STATUS:CANCELLED."""
        self._call(f"cancel_task {uid}")
        if uid in self.store.tasks:
            new = taskical.cancelled(self.store.tasks[uid], clock.now())
            if new is not None:
                self.store.tasks[uid] = new

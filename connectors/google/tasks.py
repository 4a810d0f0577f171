"""The follow-up sink: a Google Tasks list (``tasks_as="todo"``) or all-day events.

Google Tasks has no client-chosen ids, so a task's identity is a marker in its notes::

    <the reason, one sentence>

    X-SYNCD-RULE: keep_in_touch
    X-SYNCD-KEY: <key>
    X-SYNCD-UID: <uid>

``X-SYNCD-UID`` is what syncd matches on. Creating is crash-safe: the intent is
recorded in state (``pending_inserts``: uid -> time) before ``tasks.insert``; a later
``put_task`` for a pending uid first looks for the marker among tasks updated since
that time. State keys (all per account): ``tasklist`` ({title, id}),
``tasks`` (uid -> {id, completed, completed_at, deleted}), ``tasks_polled`` (RFC 3339
time of the last listing start, used as ``updatedMin``), ``pending_inserts``.

With ``tasks_as="event"`` a follow-up is an all-day event in the first configured
calendar with id = lower-case base32hex of the uid (Google accepts client ids of
``[a-v0-9]{5,1024}``) and ``extendedProperties.private`` ``syncdRule``, ``syncdKey``,
``syncdUid`` and ``syncdOwner=syncd`` (the filter ``list_tasks`` uses); an insert
answered 409 already exists. ``cancel_task`` deletes the event, which Google keeps
as ``status: cancelled`` (the API's form of ``STATUS:CANCELLED``).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from googleapiclient.errors import HttpError

from syncd.errors import AccountError
from syncd_connectors.base import Context, RemoteTask, TaskSpec
from syncd_connectors.google.calendar import parse_rfc3339
from syncd_connectors.google.client import Client, status_of

MARKER = re.compile(r"^X-SYNCD-UID: *(\S+) *$", re.M)
SKEW = dt.timedelta(minutes=5)  # updatedMin margin for clock differences
TASKLIST, TASKS, POLLED, PENDING = "tasklist", "tasks", "tasks_polled", "pending_inserts"


def notes_for(task: TaskSpec) -> str:
    """The task's notes: the reason, then the marker lines."""
    return (f"{task.description}\n\nX-SYNCD-RULE: {task.rule}\n"
            f"X-SYNCD-KEY: {task.key}\nX-SYNCD-UID: {task.uid}")


def uid_in(notes: str | None) -> str | None:
    m = MARKER.search(notes or "")
    return m.group(1) if m else None


def event_id(uid: str) -> str:
    """A Google event id for ``uid``: lower-case base32hex, no padding."""
    raw = base64.b32hexencode(uid.encode()).decode().rstrip("=").lower()
    return raw.ljust(5, "0")


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TaskSink:
    """Follow-ups as Google Tasks in the list titled ``title``."""

    def __init__(self, client: Client, ctx: Context, title: str,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.client = client
        self.ctx = ctx
        self.title = title
        self.clock = clock

    @property
    def api(self) -> Any:
        return self.client.service("tasks")

    def tasklist_id(self) -> str:
        """The list's id: cached, else found by title, else created."""
        found = self.find_tasklist(create=True)
        assert found is not None
        return found

    def find_tasklist(self, create: bool) -> str | None:
        """The list's id: cached, else found by title, else created if ``create``."""
        cached = self.ctx.state(TASKLIST)
        if cached and cached.get("title") == self.title:
            return str(cached["id"])
        found = None
        for page in self.client.pages(self.api.tasklists().list, "task lists", maxResults=1000):
            found = found or next((t["id"] for t in page.get("items") or []
                                   if t.get("title") == self.title), None)
        if found is None and not create:
            return None
        if found is None:
            found = self.client.execute(self.api.tasklists().insert(body={"title": self.title}),
                                        "create task list")["id"]
        self.ctx.set_state(TASKLIST, {"title": self.title, "id": found})
        self.ctx.set_state(TASKS, {})
        self.ctx.set_state(POLLED, None)
        return str(found)

    def _cache(self) -> dict[str, dict[str, Any]]:
        return dict(self.ctx.state(TASKS) or {})

    def _scan(self, updated_min: str | None) -> dict[str, dict[str, Any]]:
        """Tasks of the list carrying a marker (by uid), updated since ``updated_min``."""
        params: dict[str, Any] = {"tasklist": self.tasklist_id(), "maxResults": 100,
                                  "showCompleted": True, "showDeleted": True, "showHidden": True}
        if updated_min:
            params["updatedMin"] = updated_min
        found: dict[str, dict[str, Any]] = {}
        for page in self.client.pages(self.api.tasks().list, "tasks", **params):
            for item in page.get("items") or []:
                found[item["id"]] = item
        return found

    @staticmethod
    def _entry(item: dict[str, Any]) -> dict[str, Any]:
        done = item.get("status") == "completed"
        return {"id": item["id"], "completed": done,
                "completed_at": item.get("completed") if done else None,
                "deleted": bool(item.get("deleted")),
                "due": str(item["due"])[:10] if item.get("due") else None}

    def _merge(self, items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        cache = self._cache()
        by_id = {v["id"]: uid for uid, v in cache.items()}
        pending = dict(self.ctx.state(PENDING) or {})
        for task_id, item in items.items():
            uid = by_id.get(task_id) or uid_in(item.get("notes"))
            if uid is None:
                continue  # not ours
            if uid in cache and cache[uid]["id"] != task_id and item.get("deleted"):
                continue  # a deleted duplicate of a live task
            cache[uid] = self._entry(item)
            pending.pop(uid, None)
        self.ctx.set_state(TASKS, cache)
        self.ctx.set_state(PENDING, pending)
        return cache

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Tasks syncd wrote that are still in the list (one request when nothing changed)."""
        started = self.clock()
        # first: a new list resets the cache and the poll time; a read creates nothing
        if self.find_tasklist(create=False) is None:
            return {}
        cache = self._merge(self._scan(self.ctx.state(POLLED)))
        self.ctx.set_state(POLLED, _rfc3339(started - SKEW))
        return {uid: RemoteTask(uid=uid, completed=v["completed"],
                                completed_at=parse_rfc3339(v["completed_at"]) if v["completed_at"] else None,
                                due=dt.date.fromisoformat(v["due"]) if v.get("due") else None)
                for uid, v in cache.items() if not v["deleted"]}

    def put_task(self, task: TaskSpec) -> None:
        """Insert the task unless a task with its uid exists (also after a crash)."""
        cache = self._cache()
        if task.uid in cache and not cache[task.uid]["deleted"]:
            return
        pending = dict(self.ctx.state(PENDING) or {})
        if task.uid in pending:
            since = _rfc3339(parse_rfc3339(pending[task.uid]) - SKEW)
            if task.uid in self._merge(self._scan(since)) and not self._cache()[task.uid]["deleted"]:
                return
        pending[task.uid] = _rfc3339(self.clock())
        self.ctx.set_state(PENDING, pending)
        body = {"title": task.summary, "notes": notes_for(task),
                "due": f"{task.due.isoformat()}T00:00:00.000Z"}
        item = self.client.execute(self.api.tasks().insert(tasklist=self.tasklist_id(), body=body),
                                   "create task")
        cache = self._cache()
        cache[task.uid] = self._entry(item)
        pending.pop(task.uid, None)
        self.ctx.set_state(TASKS, cache)
        self.ctx.set_state(PENDING, pending)

    def cancel_task(self, uid: str) -> None:
        """Resolved: delete the task syncd created (SPEC §5, Google Tasks)."""
        cache = self._cache()
        entry = cache.get(uid)
        if entry is None or entry["deleted"]:
            return
        try:
            self.client.execute(self.api.tasks().delete(tasklist=self.tasklist_id(), task=entry["id"]),
                                "delete task")
        except HttpError as exc:
            if status_of(exc) not in (404, 410):
                raise AccountError(f"account {self.ctx.account!r}: delete task: HTTP {status_of(exc)}") from exc
        cache.pop(uid)
        self.ctx.set_state(TASKS, cache)

    def check(self) -> str:
        return f"task list {self.title!r} ({len(self.list_tasks())} follow-ups)"


class EventSink:
    """Follow-ups as all-day events in a calendar (``tasks_as = "event"``)."""

    def __init__(self, client: Client, ctx: Context, calendar_id: Callable[[], str],
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.client = client
        self.ctx = ctx
        self.calendar_id = calendar_id
        self.clock = clock

    @property
    def api(self) -> Any:
        return self.client.service("calendar")

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Events syncd wrote that are not cancelled (updatedMin-incremental)."""
        started = self.clock()
        cache = self._cache()
        params: dict[str, Any] = {"calendarId": self.calendar_id(), "showDeleted": True,
                                  "singleEvents": False, "maxResults": 2500,
                                  "privateExtendedProperty": "syncdOwner=syncd"}
        if self.ctx.state(POLLED):
            params["updatedMin"] = self.ctx.state(POLLED)
        for page in self.client.pages(self.api.events().list, "follow-up events", **params):
            for ev in page.get("items") or []:
                uid = ((ev.get("extendedProperties") or {}).get("private") or {}).get("syncdUid")
                uid = uid or next((u for u, v in cache.items() if v["id"] == ev["id"]), None)
                if uid:
                    cache[uid] = {"id": ev["id"], "completed": False, "completed_at": None,
                                  "deleted": ev.get("status") == "cancelled"}
        self.ctx.set_state(TASKS, cache)
        self.ctx.set_state(POLLED, _rfc3339(started - SKEW))
        return {uid: RemoteTask(uid=uid) for uid, v in cache.items() if not v["deleted"]}

    def _cache(self) -> dict[str, dict[str, Any]]:
        return dict(self.ctx.state(TASKS) or {})

    def put_task(self, task: TaskSpec) -> None:
        """Insert with a client-chosen id: a retry after a crash gets 409, never a duplicate."""
        ev_id = event_id(task.uid)
        body = {
            "id": ev_id, "summary": task.summary,
            "description": f"{task.description}\n\nX-SYNCD-RULE: {task.rule}\nX-SYNCD-KEY: {task.key}",
            "start": {"date": task.due.isoformat()},
            "end": {"date": (task.due + dt.timedelta(days=1)).isoformat()},
            "transparency": "transparent",
            "reminders": {"useDefault": False, "overrides": [{"method": "popup", "minutes": 0}]},
            "extendedProperties": {"private": {"syncdRule": task.rule, "syncdKey": task.key,
                                               "syncdUid": task.uid, "syncdOwner": "syncd"}},
        }
        try:
            self.client.execute(self.api.events().insert(calendarId=self.calendar_id(), body=body),
                                "create follow-up event")
        except HttpError as exc:
            if status_of(exc) != 409:
                raise AccountError(f"account {self.ctx.account!r}: create follow-up event: "
                                   f"HTTP {status_of(exc)}") from exc
        cache = self._cache()
        cache[task.uid] = {"id": ev_id, "completed": False, "completed_at": None, "deleted": False}
        self.ctx.set_state(TASKS, cache)

    def cancel_task(self, uid: str) -> None:
        """Resolved: delete the event (Google: ``status: cancelled``)."""
        try:
            self.client.execute(self.api.events().delete(calendarId=self.calendar_id(),
                                                         eventId=event_id(uid)), "cancel follow-up event")
        except HttpError as exc:
            if status_of(exc) not in (404, 410):
                raise AccountError(f"account {self.ctx.account!r}: cancel follow-up event: "
                                   f"HTTP {status_of(exc)}") from exc
        cache = self._cache()
        cache.pop(uid, None)
        self.ctx.set_state(TASKS, cache)

    def check(self) -> str:
        return f"follow-up events in calendar {self.calendar_id()!r}"

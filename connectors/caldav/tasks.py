"""The task sink: follow-ups as VTODOs (or all-day VEVENTs) in one calendar.

The calendar is the one whose display name is the ``tasks`` option, created with
MKCALENDAR when missing. Objects live at ``<calendar>/<uid>.ics``; creation uses
``If-None-Match: *`` (a 412 means it already exists: no duplicate), cancellation
re-reads and writes with ``If-Match`` so only STATUS changes and the user's edits stay.

``list_tasks`` keeps href -> (etag, task) in the account state (``STATE_KEY``) with the
calendar's sync token, so a pass with no change costs one request.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from syncd import clock, taskical
from syncd.errors import PreconditionFailed
from syncd_connectors.base import EVENTS, RemoteTask, TaskSpec
from syncd_connectors.caldav import dav, sync
from syncd_connectors.caldav.http import Http

log = logging.getLogger("syncd_connectors.caldav")

STATE_KEY = "caldav.tasks"
CANCEL_ATTEMPTS = 4
ICS_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}


def _encode(task: RemoteTask | None) -> dict[str, Any] | None:
    if task is None:
        return None
    at = task.completed_at.isoformat() if task.completed_at else None
    return {"uid": task.uid, "completed": task.completed, "completed_at": at,
            "cancelled": task.cancelled}


def _decode(value: dict[str, Any]) -> RemoteTask:
    at = value.get("completed_at")
    return RemoteTask(
        uid=value["uid"],
        completed=bool(value.get("completed")),
        completed_at=dt.datetime.fromisoformat(at) if at else None,
        cancelled=bool(value.get("cancelled")),
    )


class TaskSink:
    """Follow-ups in one calendar of the account.

    Args:
        http: the account's HTTP session.
        ctx: the account context (state).
        calendar: returns the tasks calendar's discovery entry, creating it if needed.
        as_event: write all-day VEVENTs instead of VTODOs.
    """

    def __init__(
        self, http: Http, ctx: Any, calendar: Callable[[], dict[str, Any]], as_event: bool
    ) -> None:
        self.http = http
        self.ctx = ctx
        self.calendar = calendar
        self.as_event = as_event

    def _href(self, uid: str) -> str:
        return self.calendar()["href"] + quote(uid, safe="@") + ".ics"

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Every follow-up in the tasks calendar, by uid."""
        cal = self.calendar()
        state = self.ctx.state(STATE_KEY)
        if not isinstance(state, dict) or state.get("href") != cal["href"]:
            state = {"href": cal["href"], "token": None, "items": {}}
        items: dict[str, list[Any]] = dict(state["items"])
        known = {h: v[0] for h, v in items.items()}
        found = sync.listing(self.http, cal["href"], state["token"], known, cal.get("sync", True))
        if found.full:
            items = {h: v for h, v in items.items() if h in found.present}
        for href in found.deleted:
            items.pop(href, None)
        todo = [h for h, e in found.present.items() if not e or known.get(h) != e]
        for href in todo:
            items.pop(href, None)
        for chunk in sync.fetch(self.http, cal["href"], EVENTS, todo):
            for obj in chunk:
                items[obj.href] = [obj.etag, _encode(taskical.read(obj.data))]
        self.ctx.set_state(STATE_KEY, {"href": cal["href"], "token": found.token, "items": items})
        return {v[1]["uid"]: _decode(v[1]) for v in items.values() if v[1] is not None}

    def put_task(self, task: TaskSpec) -> None:
        """Create ``task`` unless an object with its uid exists."""
        href = self._href(task.uid)
        body = taskical.render(task, clock.now(), as_event=self.as_event)
        resp = self.http.request("PUT", href, body, {**ICS_HEADERS, "If-None-Match": "*"})
        if resp.status == 412:
            log.debug("account %s: %s exists already", self.http.account, href)
            return
        if not 200 <= resp.status < 300:
            raise self.http.fail("PUT", href, resp)

    def _find(self, uid: str) -> str:
        state = self.ctx.state(STATE_KEY)
        if isinstance(state, dict):
            for href, (_, task) in state.get("items", {}).items():
                if task is not None and task["uid"] == uid:
                    return str(href)
        return self._href(uid)

    def cancel_task(self, uid: str) -> None:
        """Set the follow-up's STATUS to CANCELLED, keeping everything else.

        Raises:
            PreconditionFailed: the object kept changing under us.
        """
        href = self._find(uid)
        for _ in range(CANCEL_ATTEMPTS):
            got = self.http.request("GET", href, headers={"Accept": "text/calendar"})
            if got.status in (404, 410):
                log.info("account %s: %s is gone; nothing to cancel", self.http.account, href)
                return
            if got.status != 200:
                raise self.http.fail("GET", href, got)
            data = taskical.cancelled(got.text, clock.now())
            if data is None:
                return
            headers = dict(ICS_HEADERS)
            etag = got.headers.get("ETag") or got.headers.get("etag")
            if etag:
                headers["If-Match"] = etag
            put = self.http.request("PUT", href, data, headers)
            if 200 <= put.status < 300:
                return
            if put.status != 412:
                raise self.http.fail("PUT", href, put)
            log.info("account %s: %s changed while cancelling; re-reading", self.http.account, href)
        raise PreconditionFailed(
            f"account {self.http.account!r}: {dav.path(href)} kept changing; cancel retried later"
        )

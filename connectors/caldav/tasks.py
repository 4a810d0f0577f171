"""The task sink: follow-ups as VTODOs (or all-day VEVENTs) in one calendar.

The calendar is the one whose display name is the ``tasks`` option, created with
MKCALENDAR when missing. Objects live at ``<calendar>/<uid>.ics``; creation uses
``If-None-Match: *`` (a 412 is checked with a GET: our X-SYNCD-KEY there means no
duplicate is needed), cancellation re-reads and writes with ``If-Match`` so only
STATUS changes and the user's edits stay.

``list_tasks`` keeps href -> (etag, task) in the account state (``STATE_KEY``) with the
calendar's sync token, so a pass with no change costs one request, and the hrefs syncd
wrote (``written``), so that a follow-up missing from an answer is looked up, never
taken as deleted by the user.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import icalendar

from syncd import clock, taskical
from syncd.errors import AccountError, PreconditionFailed, TransientError
from syncd_connectors.base import EVENTS, RemoteTask, TaskSpec
from syncd_connectors.caldav import dav, sync
from syncd_connectors.caldav.http import Http

log = logging.getLogger("syncd_connectors.caldav")

STATE_KEY = "caldav.tasks"
CANCEL_ATTEMPTS = 4
PUT_ATTEMPTS = 3
ICS_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}


def _encode(task: RemoteTask | None) -> dict[str, Any] | None:
    if task is None:
        return None
    at = task.completed_at.isoformat() if task.completed_at else None
    return {"uid": task.uid, "completed": task.completed, "completed_at": at,
            "cancelled": task.cancelled, "due": task.due.isoformat() if task.due else None}


def _is_ours(data: str, task: TaskSpec) -> bool:
    """Whether ``data`` is the follow-up ``task``: its ``X-SYNCD-KEY``, or its UID (a
    client that drops unknown properties on edit keeps the UID, and our UIDs are
    digests nobody else picks)."""
    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception:  # icalendar raises many types on bad input; not ours either way
        return False
    for comp in cal.walk():
        if comp.name in ("VTODO", "VEVENT"):
            key = comp.get("x-syncd-key")
            if (key is not None and str(key) == task.key) or str(comp.get("uid", "")) == task.uid:
                return True
    return False


def _decode(value: dict[str, Any]) -> RemoteTask:
    at = value.get("completed_at")
    return RemoteTask(
        uid=value["uid"],
        completed=bool(value.get("completed")),
        completed_at=dt.datetime.fromisoformat(at) if at else None,
        cancelled=bool(value.get("cancelled")),
        due=dt.date.fromisoformat(value["due"]) if value.get("due") else None,
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

    def _state(self, cal: dict[str, Any]) -> dict[str, Any]:
        state = self.ctx.state(STATE_KEY)
        if not isinstance(state, dict) or state.get("href") != cal["href"]:
            return {"href": cal["href"], "token": None, "items": {}, "written": []}
        return state

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Every follow-up in the tasks calendar, by uid.

        A follow-up syncd wrote is left out only when the server says it is gone (a
        sync-collection 404 entry, or a GET answering 404), never because a listing or
        a multiget omitted it: those are asked again, and if the server will not say,
        this raises and nothing is counted as dismissed.

        Raises:
            TransientError: a follow-up could be neither read nor confirmed gone.
        """
        cal = self.calendar()
        state = self._state(cal)
        items: dict[str, list[Any]] = dict(state["items"])
        # every href syncd wrote or listed here: an absence must be proved for each
        written = set(state.get("written", [])) | set(items)
        known = {h: v[0] for h, v in items.items()}
        found = sync.listing(self.http, cal["href"], state["token"], known, cal.get("sync", True))
        for href in found.deleted:
            items.pop(href, None)
            written.discard(href)
        todo = [h for h, e in found.present.items() if not e or known.get(h) != e]
        unlisted = [h for h in sorted(written) if h not in found.present and h not in found.deleted]
        if not found.full:  # an incremental answer omits what did not change
            unlisted = [h for h in unlisted if h not in items]
        token = found.token
        for chunk in sync.fetch(self.http, cal["href"], EVENTS, todo + unlisted):
            for href in chunk.gone:
                items.pop(href, None)
                written.discard(href)
            for obj in chunk.objects:
                items[obj.href] = [obj.etag, _encode(taskical.read(obj.data))]
                if obj.href in unlisted and found.full:
                    token = None  # the listing was partial: list everything next pass
        self.ctx.set_state(STATE_KEY, {"href": cal["href"], "token": token, "items": items,
                                       "written": sorted(written | set(items))})
        return {v[1]["uid"]: _decode(v[1]) for v in items.values() if v[1] is not None}

    def _wrote(self, href: str) -> None:
        cal = self.calendar()
        state = self._state(cal)
        self.ctx.set_state(STATE_KEY, {**state, "written": sorted({*state.get("written", []), href})})

    def put_task(self, task: TaskSpec) -> None:
        """Create ``task`` unless our object for it exists.

        A 412 (``If-None-Match: *``) is believed only after a GET shows the object and
        it is the task's (``X-SYNCD-KEY`` or UID); a 412 for an object that is not there
        is retried, and an object syncd did not write is left alone: the task goes to
        another href (``<uid>-1.ics``, ...).

        Raises:
            AccountError: the task could not be written (no free href, or a refusal).
        """
        body = taskical.render(task, clock.now(), as_event=self.as_event)
        base = self._href(task.uid)
        for attempt in range(PUT_ATTEMPTS):
            href = base if attempt == 0 else base[: -len(".ics")] + f"-{attempt}.ics"
            for _ in range(PUT_ATTEMPTS):
                resp = self.http.request("PUT", href, body, {**ICS_HEADERS, "If-None-Match": "*"})
                if 200 <= resp.status < 300:
                    self._wrote(href)
                    return
                if resp.status != 412:
                    raise self.http.fail("PUT", href, resp)
                got = self.http.request("GET", href, headers={"Accept": "text/calendar"})
                if got.status == 200:
                    break
                if got.status not in (404, 410):
                    raise self.http.fail("GET", href, got)
                log.info("account %s: %s: 412 but nothing there; writing again",
                         self.http.account, href)
            else:
                raise TransientError(
                    f"account {self.http.account!r}: {dav.path(href)}: creation refused "
                    f"(HTTP 412) though nothing is there; retried later"
                )
            if _is_ours(got.text, task):
                log.debug("account %s: %s exists already", self.http.account, href)
                self._wrote(href)
                return
            log.warning("account %s: %s holds an object syncd did not write; left alone",
                        self.http.account, href)
        raise AccountError(
            f"account {self.http.account!r}: no free place for follow-up {task.uid} "
            f"in {self.calendar()['href']}"
        )

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

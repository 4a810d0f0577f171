"""The ``google`` connector: Calendar v3 and People v1 as sources, Tasks v1 as the sink.

Split by concern: ``auth`` (credentials, the installed-app flow), ``client``
(services, retries), ``calendar`` (events -> iCalendar), ``people`` (connections ->
vCard), ``tasks`` (the follow-up sink). Events and contacts reach the core as
iCalendar and vCard text, so inference treats Google and CalDAV alike.

Account state keys: ``calendars`` (the resolution of the configured names:
{"config": [...], "resolved": [{id, summary}]}), ``email`` (the primary calendar's
id, the user's address), ``self_emails`` (addresses Google marked ``self``),
``contact_groups``, and the sink's keys (see ``syncd_connectors.google.tasks``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

from googleapiclient.errors import HttpError

from syncd.config import Option, choice
from syncd.errors import AccountError
from syncd_connectors.base import (
    CONTACTS,
    EVENTS,
    Changes,
    Collection,
    ContactSource,
    Context,
    EventSource,
    RemoteTask,
    TaskSpec,
)
from syncd_connectors.base import TaskSink as TaskSinkRole
from syncd_connectors.google import auth
from syncd_connectors.google.calendar import CalendarSource
from syncd_connectors.google.client import Client, status_of
from syncd_connectors.google.people import COLLECTION, PeopleSource
from syncd_connectors.google.tasks import EventSink, TaskSink

__all__ = ["GoogleConnector"]

CALENDARS_KEY, EMAIL_KEY, SELF_KEY = "calendars", "email", "self_emails"


class GoogleConnector(EventSource, ContactSource, TaskSinkRole):
    """A Google account (OAuth token in the keyring, see SPEC §3)."""

    options: ClassVar[dict[str, Option]] = {
        "calendars": Option("str_list", ["primary"], "calendar ids, primary, or summaries"),
        "contacts": Option("bool", True, "read Google Contacts"),
        "tasks": Option("nonempty_str", "Follow-ups", "the Google Tasks list for follow-ups"),
        "tasks_as": Option(choice("todo", "event"), "todo",
                           '"todo" (Google Tasks) or "event" (all-day events)'),
        "client_secrets": Option("path", None, "the OAuth client JSON, for `syncd auth`"),
        "api_root": Option("url", None, "replaces Google's API roots (tests, proxies)"),
    }
    secret_kind: ClassVar[str | None] = "oauth"

    def __init__(self, name: str, options: Mapping[str, Any], ctx: Context) -> None:
        defaults = {k: o.default for k, o in self.options.items()}
        super().__init__(name, {**defaults, **options}, ctx)
        root = self.opts.get("api_root")
        self.api_root = root if not root or root.endswith("/") else root + "/"

    # -- plumbing --------------------------------------------------------------
    @cached_property
    def client(self) -> Client:
        return Client(self.ctx, self.api_root)

    @cached_property
    def _calendar(self) -> CalendarSource:
        return CalendarSource(self.client, self.name)

    @cached_property
    def _people(self) -> PeopleSource:
        return PeopleSource(self.client, self.ctx)

    @cached_property
    def _sink(self) -> TaskSink | EventSink:
        if self.opts["tasks_as"] == "event":
            return EventSink(self.client, self.ctx, self._sink_calendar)
        return TaskSink(self.client, self.ctx, self.opts["tasks"])

    def _sink_calendar(self) -> str:
        return self._resolved()[0]["id"]

    # -- calendars -------------------------------------------------------------
    def _resolved(self, refresh: bool = False) -> list[dict[str, str]]:
        """The configured calendars as [{id, summary}], cached until the config changes."""
        wanted = list(self.opts["calendars"])
        cached = self.ctx.state(CALENDARS_KEY)
        if cached and cached.get("config") == wanted and not refresh:
            return list(cached["resolved"])
        entries: list[dict[str, Any]] = []
        api = self.client.service("calendar")
        for page in self.client.pages(api.calendarList().list, "calendar list", maxResults=250):
            entries.extend(page.get("items") or [])
        primary = next((e for e in entries if e.get("primary")), None)
        if primary:
            self.ctx.set_state(EMAIL_KEY, str(primary["id"]).lower())
        resolved = [self._pick(entries, primary, name) for name in wanted]
        self.ctx.set_state(CALENDARS_KEY, {"config": wanted, "resolved": resolved})
        return resolved

    def _pick(self, entries: list[dict[str, Any]], primary: dict[str, Any] | None,
              name: str) -> dict[str, str]:
        match = primary if name == "primary" else (
            next((e for e in entries if e["id"] == name), None)
            or next((e for e in entries if e.get("summary") == name), None)
            or next((e for e in entries if str(e.get("summary", "")).casefold() == name.casefold()), None))
        if match is None:
            raise AccountError(f"account {self.name!r}: no calendar {name!r} (calendars: "
                               + ", ".join(repr(e.get("summary")) for e in entries) + ")")
        return {"id": str(match["id"]), "summary": str(match.get("summary") or match["id"])}

    # -- sources ---------------------------------------------------------------
    def self_addresses(self) -> set[str]:
        """The account's email and every address Google marked ``self``."""
        seen = set(self.ctx.state(SELF_KEY) or [])
        if "_calendar" in self.__dict__:
            seen |= self._calendar.seen_self
            self.ctx.set_state(SELF_KEY, sorted(seen))
        email = self.ctx.state(EMAIL_KEY)
        return seen | ({email} if email else set())

    def collections(self) -> list[Collection]:
        out = [Collection(id=c["id"], name=c["summary"], kind=EVENTS) for c in self._resolved()]
        if self.opts["contacts"]:
            out.append(COLLECTION)
        return out

    def changes(self, collection: Collection, cursor: str | None, known: Mapping[str, str],
                since: dt.datetime) -> Changes:
        if collection.kind == CONTACTS:
            return (yield from self._people.changes(cursor, known))
        try:
            token = yield from self._calendar.changes(collection, cursor, known, since)
        except AccountError:
            if self._calendar.stale:  # resolve the configured names again next pass
                self.ctx.set_state(CALENDARS_KEY, None)
            raise
        self.self_addresses()  # persist what this calendar taught
        return token

    # -- task sink -------------------------------------------------------------
    def list_tasks(self) -> dict[str, RemoteTask]:
        return self._sink.list_tasks()

    def put_task(self, task: TaskSpec) -> None:
        self._sink.put_task(task)

    def cancel_task(self, uid: str) -> None:
        self._sink.cancel_task(uid)

    # -- setup -----------------------------------------------------------------
    def authorize(self) -> None:
        """The OAuth installed-app flow; stores the authorized-user JSON in the keyring."""
        scopes = auth.scopes_for(self.opts["tasks_as"], bool(self.opts["contacts"]))
        creds = auth.run_flow(self.opts.get("client_secrets"), scopes)
        self.ctx.store_secret(auth.credentials_json(creds))

    def check(self) -> list[str]:
        lines = [f"calendar {c['summary']!r} ({c['id']})" for c in self._resolved(refresh=True)]
        if self.opts["contacts"]:
            try:
                page = self.client.execute(self.client.service("people").people().connections().list(
                    resourceName="people/me", personFields="names", pageSize=1), "contacts")
            except HttpError as exc:
                raise AccountError(f"account {self.name!r}: contacts: HTTP {status_of(exc)}") from exc
            lines.append(f"contacts reachable ({page.get('totalPeople', page.get('totalItems', 0))} people)")
        lines.append(self._sink.check())
        return lines

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.http.http.close()

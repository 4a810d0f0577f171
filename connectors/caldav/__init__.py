"""CalDAV/CardDAV accounts: events and contacts as sources, a calendar as task sink.

Modules: ``http`` (session, retries, error mapping), ``dav`` (WebDAV XML),
``discovery`` (principal, homes, collections), ``sync`` (sync-collection with an etag
fallback, chunked multiget), ``tasks`` (the follow-up calendar).

Account state (``ctx.state``): ``caldav.discovery`` caches the server layout until
the account's config changes or a collection vanishes (so a no-change pass sends no
discovery request, SPEC §6; ``syncd check`` always asks the server afresh),
``caldav.tasks`` caches the task calendar's listing, and ``caldav.fetch`` remembers
the collections that refused to send their objects with a backfill's listing
(``sync.changes``), so a later backfill does not ask them again.

A backfill takes the next collection's listing ahead: once a collection's own listing
is in and brings many objects (``sync.AHEAD``), a thread asks for the next one's on a
second session, while the core parses and stores this one (the server composes its
answer meanwhile). It is used only for the backfill it was taken for (no cursor,
nothing known); one that failed is asked again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from syncd import clock
from syncd.config import Option, choice
from syncd.errors import MISSING, AccountError
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
from syncd_connectors.caldav import dav, discovery, sync
from syncd_connectors.caldav.http import Http
from syncd_connectors.caldav.tasks import TaskSink

log = logging.getLogger("syncd_connectors.caldav")

DISCOVERY_KEY = "caldav.discovery"
FETCH_KEY = "caldav.fetch"
TIMEOUT = 120.0  # read timeout: a cold Radicale lists 10,000 objects slowly


class CaldavConnector(EventSource, ContactSource, TaskSinkRole):
    """A CalDAV + CardDAV server (Radicale, Xandikos, Nextcloud, Fastmail, ...)."""

    options: ClassVar[dict[str, Option]] = {
        "url": Option("url", MISSING, "the server's base URL (discovery starts there)"),
        "username": Option("nonempty_str", None, "login; the password is in the keyring"),
        "calendars": Option("str_list", None, "display names; omitted = all event calendars"),
        "addressbooks": Option("str_list", None, "display names; omitted = all"),
        "tasks": Option("nonempty_str", "Follow-ups", "calendar for follow-ups; created if missing"),
        "tasks_as": Option(choice("todo", "event"), "todo", '"todo" (VTODO) or "event" (VEVENT)'),
        "verify": Option("verify", True, "TLS: true, false, or a CA bundle path"),
    }

    def __init__(self, name: str, options: Mapping[str, Any], ctx: Context) -> None:
        super().__init__(name, options, ctx)
        self.opts.setdefault("tasks", "Follow-ups")
        self.opts.setdefault("tasks_as", "todo")
        self.opts.setdefault("verify", True)
        self._http: Http | None = None
        self._sink: TaskSink | None = None
        self._side: Http | None = None  # the session that takes listings ahead
        self._order: list[Collection] = []  # this pass's collections, in the core's order
        self._ahead: dict[str, tuple[threading.Thread, list[Any]]] = {}  # href -> (thread, its answer)

    # -- plumbing ------------------------------------------------------------
    @property
    def http(self) -> Http:
        """The account's session (the secret is read on first use)."""
        if self._http is None:
            self._http = self._session()
        return self._http

    def _session(self) -> Http:
        user = self.opts.get("username")
        password = self.ctx.secret() if user else None
        verify = self.opts.get("verify")
        return Http(self.name, self.opts["url"], user, password,
                    verify=True if verify is None else verify, timeout=TIMEOUT)

    def _fingerprint(self) -> list[Any]:
        return [self.opts["url"], self.opts.get("username")]

    def layout(self, refresh: bool = False) -> dict[str, Any]:
        """The discovered server layout, from the cache when fresh."""
        cached = self.ctx.state(DISCOVERY_KEY)
        now = clock.now().timestamp()
        if (
            not refresh
            and isinstance(cached, dict)
            and cached.get("key") == self._fingerprint()
        ):
            return cached
        found = discovery.discover(self.http)
        found.update(key=self._fingerprint(), at=now)
        self.ctx.set_state(DISCOVERY_KEY, found)
        return found

    def _forget_layout(self) -> None:
        self.ctx.set_state(DISCOVERY_KEY, None)

    def _pick(self, items: list[dict[str, Any]], wanted: list[str] | None, what: str) -> list[dict[str, Any]]:
        if wanted is None:
            return items
        by_name = {i["name"]: i for i in items}
        # A collection's path works as well as its display name (Radicale's default
        # display name is the path): "/alice/work/", "alice/work" and "work" all match.
        for i in items:
            path = i["href"].strip("/")
            for alias in (i["href"], path, path.rsplit("/", 1)[-1]):
                by_name.setdefault(alias, i)
        missing = [w for w in wanted if w not in by_name]
        if missing:
            found = ", ".join(sorted(by_name)) or "none"
            raise AccountError(
                f"account {self.name!r}: {what} {', '.join(map(repr, missing))} not found "
                f"(found: {found})"
            )
        return [by_name[w] for w in wanted]

    def _event_calendars(self, layout: dict[str, Any]) -> list[dict[str, Any]]:
        cals = [c for c in layout["calendars"] if c["name"] != self.opts["tasks"]]
        if self.opts.get("calendars") is None:
            return [c for c in cals if "VEVENT" in c["components"]]
        return self._pick(cals, self.opts["calendars"], "calendar")

    # -- sources -------------------------------------------------------------
    def self_addresses(self) -> set[str]:
        """The principal's ``calendar-user-address-set`` (mailto: addresses)."""
        return set(self.layout().get("addresses", []))

    def collections(self) -> list[Collection]:
        """The configured calendars and address books (a pass starts here)."""
        for http in (self.http, self._side):
            if http is not None:
                http.new_pass()
        layout = self.layout()
        out = [Collection(c["href"], c["name"], EVENTS) for c in self._event_calendars(layout)]
        books = self._pick(layout["addressbooks"], self.opts.get("addressbooks"), "address book")
        out += [Collection(b["href"], b["name"], CONTACTS) for b in books]
        self._order = out
        return out

    def _info(self, collection: Collection) -> dict[str, Any]:
        layout = self.layout()
        for item in layout["calendars"] + layout["addressbooks"]:
            if item["href"] == collection.id:
                return item
        return {"href": collection.id, "sync": True}

    def _learnt(self, strategy: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
        """Keep what this listing learnt of the server's fetch strategy (with the batch's state)."""
        if strategy != before:
            self.ctx.set_state(FETCH_KEY, strategy)
        return dict(strategy)

    def changes(
        self,
        collection: Collection,
        cursor: str | None,
        known: Mapping[str, str],
        since: dt.datetime,
    ) -> Changes:
        """Changes since ``cursor``: sync-collection, or an etag comparison with ``known``."""
        info = self._info(collection)
        stored = self.ctx.state(FETCH_KEY)
        strategy = dict(stored) if isinstance(stored, dict) else {}
        before = dict(strategy)
        syncs = bool(info.get("sync", True))
        backfill = cursor is None and not known and syncs
        ahead = self._taken_ahead(collection.id) if backfill else None
        try:
            stream = sync.changes(self.http, collection.id, collection.kind, cursor, known, syncs, strategy, ahead)
            first = True
            while True:
                try:
                    batch = next(stream)
                except StopIteration as end:
                    self._learnt(strategy, before)
                    return end.value  # type: ignore[no-any-return]
                if first and backfill and (batch.total or 0) >= sync.AHEAD:
                    # this listing is in, and parsing it takes a while: the next one's is asked for now
                    self._take_next_ahead(collection, strategy)
                first = False
                before = self._learnt(strategy, before)
                yield batch
        except sync.Gone:
            self._forget_layout()
            raise

    def _take_next_ahead(self, collection: Collection, strategy: Mapping[str, str]) -> None:
        """Ask, in a thread on a second session, for the backfill listing of the
        collection after ``collection`` (the core takes them in ``collections()``'s order)."""
        ids = [c.id for c in self._order]
        at = ids.index(collection.id) + 1 if collection.id in ids else len(ids)
        if at == len(ids):
            return
        nxt = self._order[at]
        if nxt.id in self._ahead or strategy.get(nxt.id) == sync.LISTING_ONLY or not self._info(nxt).get("sync", True):
            return
        if self._side is None:
            self._side = self._session()
        side = self._side
        answer: list[Any] = []

        def take() -> None:
            try:
                answer.append(sync.backfill_listing(side, nxt.id, nxt.kind))
            except BaseException as exc:  # met again when the core asks for it
                answer.append(exc)

        thread = threading.Thread(target=take, name=f"caldav-ahead {self.name}", daemon=True)
        thread.start()
        self._ahead[nxt.id] = (thread, answer)

    def _taken_ahead(self, href: str) -> sync.Listing | None:
        """The listing taken ahead for ``href``, once its thread is done (None: none
        was, or it failed: the caller asks for it itself, and meets the failure)."""
        entry = self._ahead.pop(href, None)
        if entry is None:
            return None
        thread, answer = entry
        thread.join()
        got = answer[0] if answer else None
        if not isinstance(got, sync.Listing):
            log.debug("account %s: %s: the listing taken ahead failed (%s); asking again", self.name, href, got)
            return None
        return got

    # -- task sink -----------------------------------------------------------
    @property
    def sink(self) -> TaskSink:
        """The follow-up calendar."""
        if self._sink is None:
            self._sink = TaskSink(
                self.http, self.ctx, self.task_calendar, self.opts["tasks_as"] == "event"
            )
        return self._sink

    def task_calendar(self) -> dict[str, Any]:
        """The tasks calendar's layout entry; MKCALENDAR when it does not exist."""
        return self._find_task_calendar() or self._make_task_calendar(self.layout(), self.opts["tasks"])

    def _find_task_calendar(self) -> dict[str, Any] | None:
        """The tasks calendar's layout entry, looked up again once before it is missing."""
        name = self.opts["tasks"]
        for refresh in (False, True):
            for cal in self.layout(refresh=refresh)["calendars"]:
                if cal["name"] == name:
                    return dict(cal)
        return None

    def _make_task_calendar(self, layout: dict[str, Any], name: str) -> dict[str, Any]:
        comp = "VEVENT" if self.opts["tasks_as"] == "event" else "VTODO"
        slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-") or "tasks"
        home = layout["calendar_home"]
        for n in range(5):
            href = home + quote(slug if n == 0 else f"{slug}-{n}") + "/"
            resp = self.http.request("MKCALENDAR", href, dav.mkcalendar(name, comp), dav.XML_HEADERS)
            if 200 <= resp.status < 300:
                break
            if resp.status not in (405, 409):
                raise self.http.fail("MKCALENDAR", href, resp)
        else:
            raise AccountError(f"account {self.name!r}: cannot create calendar {name!r} in {home}")
        log.info("account %s: created calendar %r at %s", self.name, name, href)
        sync_ok = any(c.get("sync") for c in layout["calendars"]) or not layout["calendars"]
        cal = {"href": href, "name": name, "sync": sync_ok, "components": [comp]}
        layout = {**layout, "calendars": [*layout["calendars"], cal]}
        self.ctx.set_state(DISCOVERY_KEY, layout)
        return cal

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Every follow-up still in the tasks calendar, by uid (a read: a missing
        calendar holds no tasks and is not created here)."""
        if self._find_task_calendar() is None:
            return {}
        try:
            return self.sink.list_tasks()
        except sync.Gone:
            self._forget_layout()
            raise

    def put_task(self, task: TaskSpec) -> None:
        """Create the follow-up unless it exists (``If-None-Match: *``)."""
        self.sink.put_task(task)

    def cancel_task(self, uid: str) -> None:
        """Set STATUS:CANCELLED on the follow-up, keeping the user's edits."""
        self.sink.cancel_task(uid)

    # -- diagnostics ---------------------------------------------------------
    def check(self) -> list[str]:
        """Rediscover and describe the account."""
        layout = self.layout(refresh=True)
        cals = self._event_calendars(layout)
        books = self._pick(layout["addressbooks"], self.opts.get("addressbooks"), "address book")
        tasks = [c for c in layout["calendars"] if c["name"] == self.opts["tasks"]]
        want = "VEVENT" if self.opts["tasks_as"] == "event" else "VTODO"
        todo_ok = [c["name"] for c in layout["calendars"] if "VTODO" in c["components"]]
        lines = [
            f"principal {layout['principal']}",
            f"calendars ({len(cals)}): " + (", ".join(c["name"] for c in cals) or "none"),
            f"address books ({len(books)}): " + (", ".join(b["name"] for b in books) or "none"),
            "VTODO support: " + (", ".join(todo_ok) if todo_ok else "no calendar accepts VTODO"),
        ]
        if tasks:
            ok = want in tasks[0]["components"]
            lines.append(f"tasks calendar {tasks[0]['name']!r}: " + ("ok" if ok else f"does not accept {want}"))
        else:
            lines.append(f"tasks calendar {self.opts['tasks']!r}: missing (will be created)")
        every = layout["calendars"] + layout["addressbooks"]
        synced = sum(1 for c in every if c.get("sync"))
        lines.append(f"sync-token support: {synced} of {len(every)} collections")
        if layout.get("addresses"):
            lines.append("user addresses: " + ", ".join(layout["addresses"]))
        return lines

    def problems(self) -> list[str]:
        """A tasks calendar that exists but cannot take follow-ups (``syncd check``)."""
        layout = self.layout(refresh=True)
        want = "VEVENT" if self.opts["tasks_as"] == "event" else "VTODO"
        for cal in layout["calendars"]:
            if cal["name"] == self.opts["tasks"] and want not in cal["components"]:
                accepts = ", ".join(cal["components"]) or "nothing"
                return [f"tasks: calendar {cal['name']!r} does not accept {want} (it takes {accepts}); "
                        f'name another calendar, or set tasks_as = "{"event" if want == "VTODO" else "todo"}"']
        return []

    def verify_secret(self, secret: str) -> None:
        """Log in with ``secret`` and find the principal (``syncd auth`` before storing).

        Raises:
            AuthError: the server refused the password.
        """
        verify = self.opts.get("verify")
        http = Http(self.name, self.opts["url"], self.opts.get("username"), secret,
                    verify=True if verify is None else verify, timeout=30.0)
        try:
            discovery.discover(http)
        finally:
            http.close()

    def close(self) -> None:
        """Release the sessions (a listing still being taken ahead fails and is dropped)."""
        self._ahead.clear()
        for http in (self._http, self._side):
            if http is not None:
                http.close()
        self._http = self._side = None

"""The connector contract against real CalDAV/CardDAV servers: Radicale and Xandikos."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from syncd.context import AccountContext
from syncd_connectors.base import EVENTS, Collection, Connector
from syncd_connectors.caldav import CaldavConnector
from tests.connectors.contract import Backend, ConnectorContract
from tests.servers import Seeder, Server

pytestmark = pytest.mark.servers


class CaldavBackend(Backend):
    """A calendar, an address book and a tasks calendar name of one test's own."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.user, self.password = server.new_user()
        self.seed = server.seeder(self.user, self.password)
        tag = uuid.uuid4().hex[:6]
        self.cal_name, self.book_name, self.tasks_name = (f"{b} {tag}" for b in ("Personal", "Contacts", "Follow-ups"))
        self.cal = self.seed.mkcalendar(self.cal_name)
        self.book = self.seed.mkaddressbook(self.book_name)
        self.state: dict[str, Any] = {}

    def connector(self) -> Connector:
        ctx = AccountContext(account="home", state_dict=self.state,
                             get_secret=lambda a: self.password or "", put_secret=lambda a, v: None)
        conn = CaldavConnector("home", {"url": self.server.url, "username": self.user,
                                        "calendars": [self.cal_name], "addressbooks": [self.book_name],
                                        "tasks": self.tasks_name}, ctx)
        conn.http.backoff = 0.01
        return conn

    def collection(self, conn: Connector, kind: str) -> Collection:
        name = self.cal_name if kind == EVENTS else self.book_name
        [coll] = [c for c in conn.collections() if c.name == name]
        return coll

    def _path(self, kind: str, key: str) -> str:
        return f"{self.cal}{key}.ics" if kind == EVENTS else f"{self.book}{key}.vcf"

    def add(self, kind: str, key: str, changed: bool = False) -> None:
        suffix = " changed" if changed else ""
        text = (Seeder.event(key, f"Meeting {key}{suffix}") if kind == EVENTS
                else Seeder.vcard(key, f"Person {key}{suffix}", f"{key}@example.org"))
        self.seed.put(self._path(kind, key), text)

    def modify(self, kind: str, key: str) -> None:
        self.add(kind, key, changed=True)

    def delete(self, kind: str, key: str) -> None:
        self.seed.delete(self._path(kind, key))

    def _task_calendar(self) -> str | None:
        conn = self.connector()
        assert isinstance(conn, CaldavConnector)
        cal = next((c for c in conn.layout(refresh=True)["calendars"] if c["name"] == self.tasks_name), None)
        return None if cal is None else str(cal["href"])

    def task_count(self) -> int:
        href = self._task_calendar()
        if href is None:
            return 0
        resp = self.seed.request("PROPFIND", href, "", {"Depth": "1"})
        return len(set(re.findall(r">([^<>]+\.ics)</", resp.text or "")))

    def sink_exists(self) -> bool:
        return self._task_calendar() is not None

    def _task_href(self, uid: str) -> str:
        return f"{self._task_calendar()}{uid}.ics"

    def task_summary(self, uid: str) -> str | None:
        text = self.seed.get(self._task_href(uid)) or ""
        return next((line[8:] for line in text.splitlines() if line.startswith("SUMMARY:")), None)

    def edit_task_summary(self, uid: str, summary: str) -> None:
        href = self._task_href(uid)
        text = self.seed.get(href) or ""
        self.seed.put(href, "".join(f"SUMMARY:{summary}\r\n" if line.startswith("SUMMARY:") else line
                                    for line in text.splitlines(keepends=True)))


class TestCaldav(ConnectorContract):
    @pytest.fixture(params=["radicale", "xandikos"])
    def backend(self, request: pytest.FixtureRequest) -> Backend:
        return CaldavBackend(request.getfixturevalue(request.param))

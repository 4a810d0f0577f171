"""The CalDAV connector against real servers (Radicale, Xandikos), through a counting proxy."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from syncd.context import AccountContext
from syncd.errors import AccountError, AuthError, TransientError
from syncd_connectors.base import (
    CONTACTS,
    EVENTS,
    ChangeBatch,
    ChangeStream,
    Collection,
    RawObject,
    TaskSpec,
)
from syncd_connectors.caldav import DISCOVERY_KEY, CaldavConnector
from tests.caldav.proxy import CountingProxy
from tests.servers import Seeder, Server

pytestmark = pytest.mark.servers

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass
class Drained:
    """Everything a ``changes()`` call yielded, and the cursor it returned."""

    batches: list[ChangeBatch]
    cursor: str | None = None
    upserts: dict[str, RawObject] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)


def drain(changes: Iterable[ChangeBatch]) -> Drained:
    stream = ChangeStream(changes)
    out = Drained(list(stream))
    assert stream.ended
    out.cursor = stream.cursor
    for b in out.batches:
        out.upserts.update({o.href: o for o in b.upserts})
        out.deletes += b.deletes
    return out


class Env:
    """One test's account: its own user (Radicale) or collection names (Xandikos)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.user, self.password = server.new_user()
        self.seed: Seeder = server.seeder(self.user, self.password)
        self.proxy = CountingProxy(server.url)
        self.tag = uuid.uuid4().hex[:6]
        self.state: dict[str, Any] = {}

    def name(self, base: str) -> str:
        """A display name unique to this test (Xandikos shares one principal)."""
        return f"{base} {self.tag}"

    def connector(self, **opts: Any) -> CaldavConnector:
        """A connector through the proxy, sharing this env's persisted state."""
        options: dict[str, Any] = {
            "url": self.proxy.url, "username": self.user, "calendars": None,
            "addressbooks": None, "tasks": self.name("Follow-ups"), "tasks_as": "todo",
            "verify": True,
        }
        options.update(opts)
        ctx = AccountContext(
            account="home", state_dict=self.state,
            get_secret=lambda a: self.password or "", put_secret=lambda a, v: None,
        )
        conn = CaldavConnector("home", options, ctx)
        conn.http.backoff = 0.01
        return conn

    def calendar(self, n_events: int = 0, base: str = "Personal") -> tuple[str, str]:
        """A new event calendar with ``n_events``; returns (path, display name)."""
        name = self.name(base)
        path = self.seed.mkcalendar(name)
        for i in range(n_events):
            self.seed.put(f"{path}e{i}.ics", Seeder.event(f"{self.tag}-e{i}", f"Meeting {i}"))
        return path, name

    def book(self, n_cards: int = 0, base: str = "Contacts") -> tuple[str, str]:
        name = self.name(base)
        path = self.seed.mkaddressbook(name)
        for i in range(n_cards):
            self.seed.put(f"{path}c{i}.vcf", Seeder.vcard(f"{self.tag}-c{i}", f"Person {i}"))
        return path, name

    def close(self) -> None:
        self.proxy.close()


@pytest.fixture(params=["radicale", "xandikos"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    server: Server = request.getfixturevalue(request.param)
    e = Env(server)
    yield e
    e.close()


def one(conn: CaldavConnector, name: str) -> Collection:
    [col] = [c for c in conn.collections() if c.name == name]
    return col


def task(uid: str, due: dt.date = dt.date(2025, 3, 1)) -> TaskSpec:
    return TaskSpec(uid=uid, rule="first_meeting", key=f"first_meeting:{uid}",
                    summary="Follow up with Ana Lima", description="met on 1 Mar 2025", due=due)


# -- discovery ---------------------------------------------------------------


def test_discovery_finds_event_calendars_and_books(env: Env) -> None:
    cal, cal_name = env.calendar()
    _, book_name = env.book()
    todo_only = env.name("Chores")
    env.seed.mkcalendar(todo_only, ("VTODO",))
    env.seed.mkcalendar(env.name("Follow-ups"), ("VEVENT", "VTODO"))
    conn = env.connector()
    cols = {c.name: c for c in conn.collections()}
    assert cols[cal_name].kind == EVENTS and cols[cal_name].id.endswith(cal)
    assert cols[book_name].kind == CONTACTS
    assert todo_only not in cols  # no VEVENT: not an event calendar
    assert env.name("Follow-ups") not in cols  # the tasks calendar is never a source
    assert conn.self_addresses() == set()  # neither server has calendar-user-address-set

    picked = env.connector(calendars=[cal_name], addressbooks=[book_name])
    assert [c.name for c in picked.collections()] == [cal_name, book_name]
    with pytest.raises(AccountError, match="Nope"):
        env.connector(calendars=["Nope"]).collections()
    lines = conn.check()
    assert any(line.startswith("calendars") and cal_name in line for line in lines)
    assert any("sync-token support" in line for line in lines)
    assert any("VTODO support" in line and todo_only in line for line in lines)


def test_discovery_is_cached(env: Env) -> None:
    env.calendar()
    env.connector().collections()
    env.proxy.reset()
    conn = env.connector()
    conn.collections()
    conn.self_addresses()
    assert env.proxy.count() == 0
    assert env.state[DISCOVERY_KEY]["principal"]


# -- sources -----------------------------------------------------------------


def test_no_change_pass_is_one_request_per_collection(env: Env) -> None:
    _, cal_name = env.calendar(3)
    _, book_name = env.book(2)
    conn = env.connector(calendars=[cal_name], addressbooks=[book_name])
    cursors, known = {}, {}
    for col in conn.collections():
        d = drain(conn.changes(col, None, {}, SINCE))
        cursors[col.id], known[col.id] = d.cursor, {h: o.etag for h, o in d.upserts.items()}
    conn.put_task(task(f"{env.tag}-t1"))
    conn.list_tasks()
    conn.close()

    env.proxy.reset()
    nxt = env.connector(calendars=[cal_name], addressbooks=[book_name])  # the next pass
    cols = nxt.collections()
    for col in cols:
        d = drain(nxt.changes(col, cursors[col.id], known[col.id], SINCE))
        assert not d.upserts and not d.deletes
    assert f"{env.tag}-t1" in nxt.list_tasks()
    assert env.proxy.count() == len(cols) + 1
    assert env.proxy.count("PROPFIND") == 0


def test_incremental_changes_and_deletes(env: Env) -> None:
    path, cal_name = env.calendar(4)
    conn = env.connector(calendars=[cal_name])
    col = one(conn, cal_name)
    first = drain(conn.changes(col, None, {}, SINCE))
    known = {h: o.etag for h, o in first.upserts.items()}
    env.seed.put(f"{path}e1.ics", Seeder.event(f"{env.tag}-e1", "Moved meeting"))
    env.seed.put(f"{path}new.ics", Seeder.event(f"{env.tag}-new", "New one"))
    env.seed.delete(f"{path}e2.ics")
    env.proxy.reset()
    d = drain(conn.changes(col, first.cursor, known, SINCE))
    assert sorted(h.rsplit("/", 1)[1] for h in d.upserts) == ["e1.ics", "new.ics"]
    assert "Moved meeting" in d.upserts[f"{path}e1.ics"].data
    assert [h.rsplit("/", 1)[1] for h in d.deletes] == ["e2.ics"]
    assert env.proxy.count() == 2  # sync-collection + one multiget


def test_rejected_token_falls_back_to_full_listing(env: Env) -> None:
    path, cal_name = env.calendar(3)
    conn = env.connector(calendars=[cal_name])
    col = one(conn, cal_name)
    first = drain(conn.changes(col, None, {}, SINCE))
    known = {h: o.etag for h, o in first.upserts.items()}
    env.seed.delete(f"{path}e0.ics")
    env.seed.put(f"{path}e1.ics", Seeder.event(f"{env.tag}-e1", "Changed"))
    env.proxy.fault(method="REPORT", status=412)  # the token is refused once
    d = drain(conn.changes(col, first.cursor, known, SINCE))
    assert [h.rsplit("/", 1)[1] for h in d.upserts] == ["e1.ics"]
    assert [h.rsplit("/", 1)[1] for h in d.deletes] == ["e0.ics"]
    assert json.loads(d.cursor or "")["token"]  # a fresh token from the full listing
    # a token the real server does not know (403 valid-sync-token on both servers)
    bogus = json.dumps({"token": "http://radicale.org/ns/sync/" + "0" * 64})
    d2 = drain(conn.changes(col, bogus, {h: o.etag for h, o in d.upserts.items()}, SINCE))
    assert json.loads(d2.cursor or "")["token"]


def test_etag_fallback_without_sync_support(env: Env) -> None:
    path, cal_name = env.calendar(3)
    conn = env.connector(calendars=[cal_name])
    col = one(conn, cal_name)
    for c in env.state[DISCOVERY_KEY]["calendars"]:
        c["sync"] = False  # as if the server had no sync-collection
    first = drain(conn.changes(col, None, {}, SINCE))
    assert len(first.upserts) == 3
    known = {h: o.etag for h, o in first.upserts.items()}
    env.seed.delete(f"{path}e0.ics")
    env.proxy.reset()
    d = drain(conn.changes(col, first.cursor, known, SINCE))
    assert not d.upserts and [h.rsplit("/", 1)[1] for h in d.deletes] == ["e0.ics"]
    # absent from the listing is not proof: a GET answering 404 is (SPEC §6)
    assert env.proxy.requests == [("PROPFIND", col.id), ("GET", f"{path}e0.ics")]


def test_multiget_chunks(env: Env) -> None:
    path, cal_name = env.calendar()
    for i in range(450):
        env.seed.put(f"{path}x{i}.ics", Seeder.event(f"{env.tag}-x{i}"))
    conn = env.connector(calendars=[cal_name])
    col = one(conn, cal_name)
    env.proxy.reset()
    d = drain(conn.changes(col, None, {}, SINCE))
    assert len(d.upserts) == 450
    assert len(d.batches) >= 3
    # the listing says up front how many objects come: the progress bar's total
    assert d.batches[0].total == 450 and all(b.total is None for b in d.batches[1:])
    # a backfill asks for the objects with the listing: Radicale sends them (one REPORT);
    # Xandikos answers its listing without them, and multigets fetch them
    assert env.proxy.count("REPORT") == (1 if env.server.kind == "radicale" else 1 + 3)
    # a full listing against known objects fetches what changed in multigets of 200
    stale = {href: "old" for href in d.upserts}
    env.proxy.reset()
    d1 = drain(conn.changes(col, None, stale, SINCE))
    assert len(d1.upserts) == 450 and len(d1.batches) >= 3
    assert env.proxy.count("REPORT") >= 1 + 3
    # a server that refuses a big multiget with 400: the chunk is halved, nothing lost
    env.proxy.reset()
    env.proxy.fault(method="REPORT", body="calendar-multiget", status=400)
    d2 = drain(conn.changes(col, None, stale, SINCE))
    assert len(d2.upserts) == 450
    assert env.proxy.count("REPORT") >= 1 + 4


# -- task sink ---------------------------------------------------------------


def _task_objects(env: Env, conn: CaldavConnector) -> dict[str, str]:
    cal = conn.task_calendar()["href"]
    out = {}
    for name in ("t1", "t2", "t3"):
        text = env.seed.get(f"{cal}{env.tag}-{name}.ics")
        if text is not None:
            out[name] = text
    return out


def test_put_task_is_idempotent(env: Env) -> None:
    conn = env.connector()
    uid = f"{env.tag}-t1"
    conn.put_task(task(uid))
    conn.put_task(task(uid, due=dt.date(2025, 4, 1)))  # a retry never duplicates
    tasks = conn.list_tasks()
    assert list(tasks) == [uid] and not tasks[uid].completed
    objects = _task_objects(env, conn)
    assert list(objects) == ["t1"] and "BEGIN:VTODO" in objects["t1"]
    assert "DUE;VALUE=DATE:20250301" in objects["t1"]
    cal = next(c for c in env.state[DISCOVERY_KEY]["calendars"] if c["name"] == env.name("Follow-ups"))
    assert "VTODO" in cal["components"]


def test_reading_tasks_creates_no_calendar(env: Env) -> None:
    """A read (what a dry run does) never writes: a missing tasks calendar holds no tasks."""
    conn = env.connector(tasks=env.name("Never-made"))
    env.proxy.reset()
    assert conn.list_tasks() == {}
    assert env.proxy.count("MKCALENDAR") == 0 and env.proxy.count("PUT") == 0
    assert all(c["name"] != env.name("Never-made") for c in env.state[DISCOVERY_KEY]["calendars"])


def test_412_is_checked_before_it_is_believed(env: Env) -> None:
    conn = env.connector()
    uid = f"{env.tag}-t1"
    cal = conn.task_calendar()["href"]
    env.proxy.fault(method="PUT", status=412)  # a 412 with nothing there: written anyway
    conn.put_task(task(uid))
    assert list(_task_objects(env, conn)) == ["t1"]
    # ours, edited by a client that dropped our X- properties: the UID tells, no duplicate
    text = env.seed.get(f"{cal}{uid}.ics") or ""
    env.seed.put(f"{cal}{uid}.ics", "\r\n".join(
        line for line in text.split("\r\n") if not line.startswith("X-SYNCD-")))
    env.proxy.reset()
    conn.put_task(task(uid))
    assert [m for m, _ in env.proxy.requests] == ["PUT", "GET"]
    # another client's object where ours goes: left alone, ours goes next to it
    other = f"{env.tag}-t2"
    theirs = Seeder.event("someone-else").replace("VEVENT", "VTODO").replace("DURATION:PT1H\r\n", "")
    env.seed.put(f"{cal}{other}.ics", theirs)
    before = env.seed.get(f"{cal}{other}.ics")
    conn.put_task(task(other))
    assert env.seed.get(f"{cal}{other}.ics") == before
    assert f"UID:{other}" in (env.seed.get(f"{cal}{other}-1.ics") or "")
    assert other in conn.list_tasks()


def _edit(env: Env, href: str, old: str, new: str) -> None:
    text = env.seed.get(href)
    assert text is not None and old in text
    env.seed.put(href, text.replace(old, new))


def test_cancel_keeps_user_edits(env: Env) -> None:
    conn = env.connector()
    uid = f"{env.tag}-t1"
    conn.put_task(task(uid))
    href = conn.task_calendar()["href"] + f"{uid}.ics"
    _edit(env, href, "SUMMARY:Follow up with Ana Lima", "SUMMARY:Call Ana about the offer")
    _edit(env, href, "DUE;VALUE=DATE:20250301", "DUE;VALUE=DATE:20250310")
    env.proxy.fault(method="PUT", status=412)  # lost a race once: re-read and retry
    conn.cancel_task(uid)
    text = env.seed.get(href) or ""
    assert "STATUS:CANCELLED" in text and "NEEDS-ACTION" not in text
    assert "SUMMARY:Call Ana about the offer" in text and "DUE;VALUE=DATE:20250310" in text
    assert conn.list_tasks()[uid].cancelled
    env.proxy.reset()
    conn.cancel_task(uid)  # already cancelled: one GET, no write
    assert env.proxy.count("PUT") == 0
    conn.cancel_task(f"{env.tag}-missing")  # gone: nothing to do


def test_list_tasks_sees_completion_and_deletion(env: Env) -> None:
    conn = env.connector()
    for name in ("t1", "t2", "t3"):
        conn.put_task(task(f"{env.tag}-{name}"))
    assert sorted(conn.list_tasks()) == sorted(f"{env.tag}-{n}" for n in ("t1", "t2", "t3"))
    cal = conn.task_calendar()["href"]
    _edit(env, f"{cal}{env.tag}-t1.ics", "STATUS:NEEDS-ACTION",
          "STATUS:COMPLETED\r\nCOMPLETED:20250302T120000Z")
    _edit(env, f"{cal}{env.tag}-t2.ics", "STATUS:NEEDS-ACTION", "PERCENT-COMPLETE:100")
    env.seed.delete(f"{cal}{env.tag}-t3.ics")
    foreign = Seeder.event("not-ours").replace("VEVENT", "VTODO").replace("DURATION:PT1H\r\n", "")
    env.seed.put(f"{cal}foreign.ics", foreign)  # a VTODO syncd did not write: ignored
    env.proxy.reset()
    tasks = env.connector().list_tasks()
    assert sorted(tasks) == [f"{env.tag}-t1", f"{env.tag}-t2"]
    t1 = tasks[f"{env.tag}-t1"]
    assert t1.completed and t1.completed_at == dt.datetime(2025, 3, 2, 12, tzinfo=dt.UTC)
    assert tasks[f"{env.tag}-t2"].completed
    assert env.proxy.count() == 2  # sync-collection + one multiget
    env.proxy.reset()
    assert sorted(env.connector().list_tasks()) == sorted(tasks)
    assert env.proxy.count() == 1


def test_tasks_as_event(env: Env) -> None:
    _, cal_name = env.calendar(1)
    conn = env.connector(tasks_as="event", tasks=env.name("Reminders"))
    uid = f"{env.tag}-t1"
    conn.put_task(task(uid))
    cal = conn.task_calendar()
    assert cal["components"] == ["VEVENT"]
    text = env.seed.get(cal["href"] + f"{uid}.ics") or ""
    assert "BEGIN:VEVENT" in text and "BEGIN:VALARM" in text and "VTODO" not in text
    assert uid in conn.list_tasks()
    # a fresh discovery sees the new calendar, and still never as a source
    env.state.pop(DISCOVERY_KEY)
    names = [c.name for c in env.connector(tasks_as="event", tasks=env.name("Reminders")).collections()]
    assert cal_name in names and env.name("Reminders") not in names


# -- connections -------------------------------------------------------------


def test_401_is_auth_error(env: Env) -> None:
    env.proxy.fault(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
    with pytest.raises(AuthError, match="home"):
        env.connector().collections()


def test_wrong_password_is_auth_error(radicale: Server) -> None:
    user, _ = radicale.new_user()
    ctx = AccountContext(account="home", state_dict={}, get_secret=lambda a: "wrong-pw-123",
                         put_secret=lambda a, v: None)
    conn = CaldavConnector("home", {"url": radicale.url, "username": user}, ctx)
    with pytest.raises(AuthError) as info:
        conn.collections()
    assert "wrong-pw-123" not in str(info.value)


def test_5xx_and_network_errors_are_retried(env: Env) -> None:
    _, cal_name = env.calendar(2)
    conn = env.connector(calendars=[cal_name])
    col = one(conn, cal_name)
    env.proxy.fault(method="REPORT", status=500)
    env.proxy.fault(method="REPORT", drop=True)
    env.proxy.fault(method="REPORT", status=503, headers={"Retry-After": "1"})
    t0 = time.monotonic()
    d = drain(conn.changes(col, None, {}, SINCE))
    assert len(d.upserts) == 2
    assert time.monotonic() - t0 >= 0.9  # Retry-After honoured


def test_timeouts_are_retried(env: Env) -> None:
    conn = env.connector()
    conn.http.timeout = 0.5
    env.proxy.fault(method="PROPFIND", delay=1.5)
    assert conn.collections() is not None


def test_a_hang_is_capped_per_pass(env: Env) -> None:
    conn = env.connector()
    conn.http.timeout, conn.http.budget = 0.5, 1.2  # seconds: a short pass budget
    env.proxy.fault(method="PROPFIND", delay=2, times=100)  # the server hangs
    with pytest.raises(TransientError, match="backs off"):
        conn.collections()
    assert env.proxy.count() < conn.http.attempts  # gave up before the retries ran out
    env.proxy.reset()
    conn.http.new_pass()  # the next pass starts with a whole budget
    assert conn.collections() is not None


def test_a_reset_mid_body_is_retried(env: Env) -> None:
    conn = env.connector()
    env.proxy.fault(method="PROPFIND", cut=True, times=2)
    assert conn.collections() is not None
    assert env.proxy.faults == []


def test_persistent_5xx_is_transient_error(env: Env) -> None:
    conn = env.connector()
    env.proxy.fault(status=500, times=100)
    with pytest.raises(TransientError) as info:
        conn.collections()
    msg = str(info.value)
    assert "'home'" in msg and env.proxy.url.rstrip("/") in msg and "HTTP 500" in msg
    if env.password:
        assert env.password not in msg.replace(env.proxy.url, "")
    assert env.proxy.count() == conn.http.attempts

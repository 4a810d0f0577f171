"""A ``type = "caldav"`` account through the real ``syncd`` command, against Radicale and Xandikos.

Each test drives ``python -m syncd`` as a subprocess with ``SYNCD_NOW`` fixing syncd's
clock. The account URL points at a ``CountingProxy`` in front of the server, so tests
count requests and inject faults; test data is seeded (and the user's edits are made)
over plain HTTP straight to the server. The password lives in a real keyring backend
(``keyrings.alt.file.PlaintextKeyring`` under a temporary ``XDG_DATA_HOME``); on
Radicale each test has its own user with a random password, and after every test that
password must not appear in any output of syncd nor in the ledger's bytes.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icalendar
import pytest

from tests.caldav.proxy import CountingProxy
from tests.helpers import KeyringCli, event, vcard
from tests.servers import Server

pytestmark = pytest.mark.servers

ME = "me@example.org"
NOW = "2026-06-15T10:00:00Z"  # 12:00 in Berlin
LATER = "2026-06-17T10:00:00Z"



def card(uid: str, name: str, email: str, groups: str | None = "Friends") -> str:
    """A vCard 3.0 with a UID (CardDAV servers want one)."""
    return vcard(name, email, groups=groups).replace("VERSION:3.0\r\n", f"VERSION:3.0\r\nUID:{uid}\r\n")


class DavWorld(KeyringCli):
    """One test's CalDAV account ``home``: a calendar, an address book, a tasks calendar name."""

    def __init__(self, root: Path, server: Server) -> None:
        self.root, self.server = root, server
        self.tag = uuid.uuid4().hex[:8]
        self.user: str | None = None
        self.password: str | None = None
        if server.kind == "radicale":
            assert server.htpasswd is not None
            self.user, self.password = f"u{self.tag}", f"pw-{uuid.uuid4().hex}"
            with server.htpasswd.open("a") as f:  # re-read by Radicale on every login
                f.write(f"{self.user}:{self.password}\n")
        self.seed = server.seeder(self.user, self.password)
        self.cal_name, self.book_name = f"Personal {self.tag}", f"Contacts {self.tag}"
        self.tasks_name = f"Follow-ups {self.tag}"
        self.cal = self.seed.mkcalendar(self.cal_name)
        self.book = self.seed.mkaddressbook(self.book_name)
        self.proxy = CountingProxy(server.url)
        self.ledger = root / "state" / "ledger.sqlite3"
        self.data = root / "data"
        self.config = root / "config.toml"
        self.outputs: list[str] = []
        self.write_config()
        if self.password:
            self.keyring().set_password("syncd", "home", self.password)

    def write_config(self) -> None:
        login = f'username = "{self.user}"\n' if self.user else ""
        self.config.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "Europe/Berlin"
write_to = "home"
ledger = "{self.ledger}"

[accounts.home]
type = "caldav"
url = "{self.proxy.url}"
{login}calendars = ["{self.cal_name}"]
addressbooks = ["{self.book_name}"]
tasks = "{self.tasks_name}"

[rules.keep_in_touch]
groups = {{ Friends = "30d" }}
""")

    # -- the server, as the user's other clients see it ------------------------------
    def meet(self, name: str, text: str) -> None:
        self.seed.put(f"{self.cal}{name}.ics", text)

    def contact(self, name: str, full_name: str, email: str, groups: str | None = "Friends") -> None:
        self.seed.put(f"{self.book}{name}.vcf", card(f"{self.tag}-{name}", full_name, email, groups))

    def tasks_href(self) -> str:
        """The tasks calendar, which syncd created with MKCALENDAR."""
        made = [p for m, p in self.proxy.requests if m == "MKCALENDAR"]
        assert len(made) == 1, self.proxy.requests
        return made[0]

    def task_objects(self) -> dict[str, str]:
        """uid -> text of every object in the tasks calendar."""
        body = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
                "<D:getetag/></D:prop></D:propfind>")
        resp = self.seed.request("PROPFIND", self.tasks_href(), body,
                                 {"Depth": "1", "Content-Type": "application/xml"})
        assert resp.status_code == 207, resp.text
        hrefs = [h for h in re.findall(r"<(?:\w+:)?href>([^<]+)</", resp.text or "") if h.endswith(".ics")]
        out = {}
        for href in hrefs:
            text = self.seed.get(href.replace(self.server.url.rstrip("/"), ""))
            assert text is not None
            out[str(_comp(text)["uid"])] = text
        return out

    def edit_task(self, uid: str, old: str, new: str) -> None:
        href = self.tasks_href() + f"{uid}.ics"
        text = self.seed.get(href)
        assert text is not None and re.search(old, text), text
        self.seed.put(href, re.sub(old, new, text))

    def close(self) -> None:
        self.proxy.close()


def _comp(text: str) -> icalendar.cal.Component:
    return next(c for c in icalendar.Calendar.from_ical(text).walk() if c.name in ("VTODO", "VEVENT"))


def _assert_no_secret(world: DavWorld, *extra: str) -> None:
    for secret in (world.password, *extra):
        if not secret:
            continue
        for text in world.outputs:
            assert secret not in text
        if world.ledger.exists():
            assert secret.encode() not in world.ledger_bytes()


def _make(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> Iterator[DavWorld]:
    world = DavWorld(tmp_path, request.getfixturevalue(kind))
    try:
        yield world
        _assert_no_secret(world)  # (h), after every test
    finally:
        world.close()


@pytest.fixture(params=["radicale", "xandikos"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DavWorld]:
    yield from _make(request, tmp_path, request.param)


@pytest.fixture
def rworld(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DavWorld]:
    yield from _make(request, tmp_path, "radicale")


def _bob(world: DavWorld) -> dict[str, Any]:
    """Bob Stone, a Friend, last met on 1 Apr; backfilled: one catch-up task."""
    world.contact("bob", "Bob Stone", "bob@example.com")
    world.meet("m-bob", event(f"{world.tag}-m-bob", "20260401T100000Z", "Lunch at Mesa", ["bob@example.com"]))
    world.run("--backfill")
    [task] = world.tasks_json()
    return task


# -- (a) backfill, (f) a no-change pass, (g) check ------------------------------------------


def test_check_backfill_and_no_change_passes(world: DavWorld) -> None:
    out = world.run("check")
    assert "home (caldav): ok" in out.stdout
    assert f"calendars (1): {world.cal_name}" in out.stdout
    assert f"address books (1): {world.book_name}" in out.stdout
    assert f"tasks calendar '{world.tasks_name}': missing (will be created)" in out.stdout
    assert "sync-token support" in out.stdout

    t = _bob(world)
    assert (t["rule"], t["state"], t["person"], t["due"], t["account"]) == (
        "keep_in_touch", "open", "Bob Stone", "2026-06-15", "home")
    assert t["reason"] == "last met 1 Apr 2026 (Lunch at Mesa); Friends every 30 days"
    assert [x["uid"] for x in json.loads(world.run("tasks", "--json").stdout)] == [t["uid"]]
    bob = world.people()["Bob Stone"]
    assert (bob["interactions"], bob["cadence_days"], bob["due"]) == (1, 30, "2026-05-01")
    objects = world.task_objects()  # in the calendar syncd made with MKCALENDAR
    assert list(objects) == [t["uid"]]
    text = objects[t["uid"]]
    todo = _comp(text)
    assert todo.name == "VTODO" and str(todo["summary"]).startswith("Catch up with Bob Stone")
    assert str(todo["x-syncd-rule"]) == "keep_in_touch" and str(todo.get("x-syncd-key") or "")
    assert "DUE;VALUE=DATE:20260615" in text
    assert str(todo["description"]) == t["reason"]
    assert f"tasks calendar '{world.tasks_name}': ok" in world.run("check").stdout

    # a rerun never duplicates it
    world.run("--backfill")
    world.run("sync")  # reads back the task the backfill wrote
    tasks = world.tasks_href()
    # 00:30 in Berlin: a new local day, so the rules run again
    for now in (NOW, "2026-06-15T22:30:00Z"):
        mark = len(world.proxy.requests)
        out = world.run("sync", now=now)
        assert "home: 0 changes, ok" in out.stdout
        sent = world.proxy.requests[mark:]
        # one sync-collection REPORT per collection, no discovery
        assert sorted(p for _, p in sent) == sorted([world.cal, world.book, tasks]), sent
        assert {m for m, _ in sent} == {"REPORT"}
    assert list(world.task_objects()) == [t["uid"]]
    assert [x["uid"] for x in world.tasks_json()] == [t["uid"]]


# -- (b) SPEC §4 through the servers -----------------------------------------------------


def test_inference_rules_on_server_events(world: DavWorld) -> None:
    for key, name in (("dana", "Dana Decline"), ("erin", "Erin Room"), ("fay", "Fay Weekly"), ("gus", "Gus Crowd")):
        world.contact(key, name, f"{key}@example.com", groups=None)
    t = world.tag
    world.meet("declined", event(f"{t}-d", "20260510T090000Z", "Pitch",
                                 [f"{ME};PARTSTAT=DECLINED", "dana@example.com"]))
    world.meet("room", event(f"{t}-r", "20260511T090000Z", "Sync",
                             ["erin@example.com", "room1@example.com;CUTYPE=ROOM;CN=Room 1"]))
    series = event(f"{t}-w", "20260504T100000Z", "1:1", ["fay@example.com"], extra=["RRULE:FREQ=WEEKLY;COUNT=4"])
    gone = event(f"{t}-w", "20260511T100000Z", "1:1", ["fay@example.com"],
                 extra=["RECURRENCE-ID:20260511T100000Z", "STATUS:CANCELLED"])
    override = "BEGIN:VEVENT" + gone.split("BEGIN:VEVENT")[1].split("END:VCALENDAR")[0]
    world.meet("weekly", series.replace("END:VCALENDAR", override + "END:VCALENDAR"))
    crowd = [f"c{i}@example.net" for i in range(10)]  # with Gus: 11 others, more than max_attendees
    world.meet("crowd", event(f"{t}-c", "20260512T090000Z", "All hands", ["gus@example.com", *crowd]))
    world.run("--backfill")
    people = world.people()
    assert people["Dana Decline"]["interactions"] == 0
    assert people["Erin Room"]["interactions"] == 1
    assert "Room 1" not in people and not any("room1@" in e for p in people.values() for e in p["emails"])
    fay = people["Fay Weekly"]
    assert fay["interactions"] == 3 and fay["last_met"] == "2026-05-25T10:00:00Z"
    assert fay["first_met"] == "2026-05-04T10:00:00Z"
    assert people["Gus Crowd"]["interactions"] == 0
    assert not any(e.endswith("@example.net") for p in people.values() for e in p["emails"])
    assert ME not in {e for p in people.values() for e in p["emails"]}


# -- (c) lifecycle on the server ----------------------------------------------------------


def test_done_dismissed_resolved_on_the_server(world: DavWorld) -> None:
    t = world.tag
    for i, (key, name) in enumerate((("bob", "Bob Stone"), ("carl", "Carl Ito"), ("dave", "Dave Moss"))):
        world.contact(key, name, f"{key}@example.com")
        world.meet(f"m-{key}", event(f"{t}-m-{key}", f"2026040{i + 1}T100000Z", "Lunch", [f"{key}@example.com"]))
    world.run("--backfill")
    by = {x["person"]: x for x in world.tasks_json()}
    assert sorted(by) == ["Bob Stone", "Carl Ito", "Dave Moss"]
    assert {x["state"] for x in by.values()} == {"open"}
    bob, carl, dave = by["Bob Stone"]["uid"], by["Carl Ito"]["uid"], by["Dave Moss"]["uid"]
    # the user, in another client: completes Bob's, deletes Carl's, edits Dave's and meets Dave
    world.edit_task(bob, "STATUS:NEEDS-ACTION", "STATUS:COMPLETED\r\nCOMPLETED:20260616T080000Z")
    world.seed.delete(world.tasks_href() + f"{carl}.ics")
    world.edit_task(dave, r"SUMMARY:[^\r\n]*", "SUMMARY:Catch up with Dave Moss - ask about Porto")
    world.meet("m-dave2", event(f"{t}-m-dave2", "20260616T100000Z", "Dinner", ["dave@example.com"]))
    out = world.run("sync", now=LATER)
    assert "resolved" in out.stdout
    states = {x["person"]: x["state"] for x in world.tasks_json(now=LATER)}
    assert states == {"Bob Stone": "done", "Carl Ito": "dismissed", "Dave Moss": "resolved"}
    objects = world.task_objects()
    assert sorted(objects) == sorted([bob, dave])
    d = _comp(objects[dave])
    assert str(d["status"]) == "CANCELLED" and str(d["summary"]) == "Catch up with Dave Moss - ask about Porto"
    assert str(_comp(objects[bob])["status"]) == "COMPLETED"
    people = world.people(now=LATER)
    assert people["Bob Stone"]["due"] == "2026-07-16"  # a done catch-up counts as contact
    assert people["Dave Moss"]["due"] == "2026-07-16"
    later = "2026-06-25T10:00:00Z"  # Carl: still due, and never re-created
    world.run("sync", now=later)
    assert sorted(world.task_objects()) == sorted([bob, dave])
    assert len(world.tasks_json(now=later)) == 3


# -- (d) incremental, and (e) a 500 ---------------------------------------------------------------------


def test_incremental_add_change_delete_through_a_500(world: DavWorld) -> None:
    t = world.tag
    world.contact("bob", "Bob Stone", "bob@example.com")
    world.contact("carla", "Carla Diaz", "carla@example.com")
    world.meet("e1", event(f"{t}-e1", "20260401T100000Z", "Lunch", ["bob@example.com"]))
    world.meet("e2", event(f"{t}-e2", "20260410T100000Z", "Coffee", ["bob@example.com"]))
    world.run("--backfill")
    people = world.people()
    assert people["Bob Stone"]["interactions"] == 2 and people["Carla Diaz"]["interactions"] == 0
    world.meet("e1", event(f"{t}-e1", "20260401T100000Z", "Lunch", ["bob@example.com", "carla@example.com"]))
    world.seed.delete(f"{world.cal}e2.ics")
    world.meet("e3", event(f"{t}-e3", "20260612T100000Z", "Intro", ["ana@startup.example;CN=Ana Lima"]))
    world.proxy.fault(method="REPORT", status=500)  # (e) once: retried within the pass
    mark = len(world.proxy.requests)
    out = world.run("sync")
    assert "home: 3 changes, ok" in out.stdout and "Traceback" not in out.stderr
    assert world.proxy.faults == []  # the fault was served
    assert not [r for r in world.proxy.requests[mark:] if r[0] == "PROPFIND"]  # no rediscovery
    people = world.people()
    assert people["Bob Stone"]["interactions"] == 1 and people["Bob Stone"]["last_met"] == "2026-04-01T10:00:00Z"
    assert people["Carla Diaz"]["interactions"] == 1
    assert people["Ana Lima"]["interactions"] == 1 and people["Ana Lima"]["in_address_book"] is False


# -- (e) faults through the proxy -----------------------------------------------------------


def test_dropped_connections_fail_the_pass_cleanly_then_it_catches_up(world: DavWorld) -> None:
    t = _bob(world)
    world.meet("e2", event(f"{world.tag}-e2", "20260612T100000Z", "Intro", ["ana@startup.example;CN=Ana Lima"]))
    # every attempt at the calendar's REPORT: the connection closes without an answer
    world.proxy.fault(drop=True, path=re.escape(world.cal), times=1000)
    proc = world.run("sync", check=False)
    assert proc.returncode == 75, proc.stdout + proc.stderr  # the only account failed
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "home" in proc.stderr
    acc = world.status()["accounts"][0]
    assert acc["last_error"] and "home" in acc["last_error"] and acc["last_error_at"] == NOW
    with world.proxy.lock:
        world.proxy.faults.clear()
    out = world.run("sync")
    assert "home: 1 changes, ok" in out.stdout
    assert world.status()["accounts"][0]["last_error"] is None
    assert world.people()["Ana Lima"]["interactions"] == 1
    tasks = world.tasks_json()
    assert sorted((x["rule"], x["person"]) for x in tasks) == [
        ("first_meeting", "Ana Lima"), ("keep_in_touch", "Bob Stone")]
    assert sorted(world.task_objects()) == sorted(x["uid"] for x in tasks)
    assert t["uid"] in world.task_objects()


def test_wrong_password_says_run_auth(rworld: DavWorld) -> None:
    _bob(rworld)
    wrong = f"wrong-{uuid.uuid4().hex}"
    rworld.keyring().set_password("syncd", "home", wrong)
    proc = rworld.run("sync", check=False)
    # refused credentials exit 1, not 75: a retry cannot fix them (commit a6570e5)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "syncd auth home" in proc.stderr and "Traceback" not in proc.stderr
    assert "syncd auth home" in (rworld.status()["accounts"][0]["last_error"] or "")
    check = rworld.run("check", check=False)
    assert check.returncode == 1 and "syncd auth home" in check.stdout
    _assert_no_secret(rworld, wrong)


# -- auth and (h) secrets --------------------------------------------------------------------------


def _auth_in_pty(world: DavWorld, secret: str) -> tuple[int, str]:
    """``syncd auth home`` with a pty as its controlling terminal (getpass reads /dev/tty)."""
    master, slave = os.openpty()
    ctty = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", ctty, sys.executable, "-m", "syncd", "--config", str(world.config), "auth", "home"],
        stdin=slave, stdout=slave, stderr=slave, env=world.env(NOW), start_new_session=True,
    )
    os.close(slave)
    out, sent = b"", False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if not sent and b"Password" in out:
                    os.write(master, secret.encode() + b"\n")
                    sent = True
            elif proc.poll() is not None:
                break
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = out.decode(errors="replace")
    world.outputs.append(text)
    return rc, text


def test_auth_stores_the_password_in_the_keyring(rworld: DavWorld) -> None:
    assert rworld.password
    rworld.keyring().delete_password("syncd", "home")
    proc = rworld.run("sync", check=False)
    assert proc.returncode == 75 and "syncd auth home" in proc.stderr
    rc, text = _auth_in_pty(rworld, rworld.password)
    assert rc == 0, text
    assert "Password for account 'home'" in text and "stored the secret" in text
    assert rworld.keyring().get_password("syncd", "home") == rworld.password
    _bob(rworld)  # the stored password works


def test_no_secret_in_any_output_or_in_the_ledger(rworld: DavWorld) -> None:
    _bob(rworld)
    rworld.meet("e2", event(f"{rworld.tag}-e2", "20260612T100000Z", "Intro", ["ana@startup.example"]))
    rworld.run("-vv", "sync")  # library log lines too
    for args in (("status",), ("people",), ("-v", "check")):
        rworld.run(*args)
    assert rworld.password and rworld.ledger.exists()
    _assert_no_secret(rworld)


# -- interop: another client library reads and completes what syncd wrote -------------------


def test_caldav_library_reads_and_completes_our_vtodo(world: DavWorld) -> None:
    import caldav

    _bob(world)
    client = caldav.DAVClient(url=world.server.url, username=world.user, password=world.password)
    [tasks] = [c for c in client.principal().calendars() if c.get_display_name() == world.tasks_name]
    [todo] = tasks.todos()
    comp = todo.icalendar_component
    assert str(comp["summary"]) == "Catch up with Bob Stone"
    assert str(comp["x-syncd-rule"]) == "keep_in_touch"
    assert comp.decoded("due").isoformat() == "2026-06-15"
    todo.complete()  # the way any caldav-library client ticks a task off
    world.run("sync", now=LATER)
    [task] = world.tasks_json(now=LATER)
    assert task["state"] == "done"

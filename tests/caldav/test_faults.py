"""A partial answer is never the truth (SPEC §6): one fault per test, through the real ``syncd``.

Every test plays the same story on Radicale, through the fault-injecting proxy
(``tests.caldav.proxy``): a backfill writes follow-ups; the user completes one, deletes
one, meets people, edits and deletes events; syncd syncs; then a clean pass. One
fault is injected into one pass. Afterwards ``syncd people --json`` and
``syncd tasks --json --all`` must say what the same story says without the fault (the
reference is played once per module, in its own account). Each test also checks that
its fault was served, and how the faulty pass ended: retried within the pass, or the
account failed with a message and kept its old token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.caldav.test_cli import DavWorld, _assert_no_secret
from tests.helpers import event
from tests.servers import Server

pytestmark = pytest.mark.servers

NOW = "2026-06-15T10:00:00Z"
LATER = "2026-06-17T10:00:00Z"
LAST = "2026-06-18T10:00:00Z"
FRIENDS = ["ada", "ben", "cal", "dot", "eve", "fox", "gil", "hal"]


def name(key: str) -> str:
    """``ada`` -> ``Ada Friend``."""
    return f"{key.title()} Friend"


def seed(world: DavWorld) -> None:
    """Eight friends, each met once in April; one of them twice."""
    for i, key in enumerate(FRIENDS):
        world.contact(key, name(key), f"{key}@example.com")
        world.meet(f"m-{key}", event(f"{world.tag}-m-{key}", f"2026040{i + 1}T100000Z", "Lunch",
                                     [f"{key}@example.com"]))
    world.meet("m-ada2", event(f"{world.tag}-m-ada2", "20260409T100000Z", "Tea", ["ada@example.com"]))


def ours(world: DavWorld) -> dict[str, str]:
    """summary -> href of every follow-up syncd wrote to the tasks calendar."""
    body = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
            "<D:getetag/></D:prop></D:propfind>")
    resp = world.seed.request("PROPFIND", world.tasks_href(), body, {"Depth": "1"})
    out = {}
    for href in re.findall(r"<(?:\w+:)?href>([^<]+\.ics)</", resp.text or ""):
        text = world.seed.get(href) or ""
        if "X-SYNCD-KEY" in text:
            out[re.findall(r"SUMMARY:([^\r\n]*)", text)[0]] = href
    return out


def edit(world: DavWorld) -> None:
    """What the user does between the backfill and the next pass, in other clients."""
    by = ours(world)
    names = sorted(by)  # Ben's is completed and Cal's deleted (Dot's stays open)
    if names:
        text = world.seed.get(by[names[0]]) or ""
        world.seed.put(by[names[0]], text.replace("STATUS:NEEDS-ACTION",
                                                  "STATUS:COMPLETED\r\nCOMPLETED:20260616T080000Z"))
    if len(names) > 1:
        world.seed.delete(by[names[1]])
    t = world.tag
    world.meet("m-gil", event(f"{t}-m-gil", "20260407T100000Z", "Lunch", ["gil@example.com", "ivy@example.net"]))
    world.seed.delete(f"{world.cal}m-ada2.ics")
    world.meet("m-new1", event(f"{t}-m-new1", "20260616T100000Z", "Intro", ["kim@startup.example;CN=Kim Lo"]))
    world.meet("m-new2", event(f"{t}-m-new2", "20260616T140000Z", "Coffee", ["dot@example.com"]))


def _tasks(world: DavWorld) -> list[dict[str, Any]]:
    return sorted(world.tasks_json(now=LAST), key=lambda t: (t["rule"], t["person"], t["due"]))


def outcome(world: DavWorld) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """What the user sees at the end: people and every follow-up."""
    return world.people(now=LAST), _tasks(world)


Hook = Callable[[DavWorld], None]


def story(world: DavWorld, before: dict[str, Hook] | None = None,
          check: dict[str, Callable[[Any], None]] | None = None, retry: str | None = None) -> None:
    """Play the story; ``before[phase]`` queues a fault, ``check[phase]`` sees that pass's result.

    ``retry``: the phase whose pass is expected to fail; a clean pass follows it at
    the same time (as the daemon's backoff would, soon after), so that what the
    rules do with dates stays comparable.
    """
    before, check = before or {}, check or {}
    world.unserved = []  # type: ignore[attr-defined]
    seed(world)
    phases = [("backfill", ("--backfill",), NOW), ("sync", ("sync",), LATER), ("clean", ("sync",), LAST)]
    if retry is not None:
        at = next(i for i, p in enumerate(phases) if p[0] == retry)
        phases.insert(at + 1, ("retry", ("sync",), phases[at][2]))
    for phase, args, now in phases:
        if phase == "sync":
            edit(world)
        if phase in before:
            before[phase](world)
        proc = world.run(*args, now=now, check=False)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        if phase in check:
            check[phase](proc)
        elif phase in ("clean", "retry"):
            assert proc.returncode == 0, proc.stdout + proc.stderr
        if phase in before:  # was the fault served during that pass? (checked last)
            world.unserved += [(phase, f) for f in world.proxy.faults]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def reference(radicale: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The story without a fault."""
    world = DavWorld(tmp_path_factory.mktemp("clean"), radicale)
    try:
        story(world, check={"backfill": _ok, "sync": _ok})
        yield outcome(world)
    finally:
        world.close()


@pytest.fixture
def world(radicale: Server, tmp_path: Path) -> Iterator[DavWorld]:
    w = DavWorld(tmp_path, radicale)
    try:
        yield w
        _assert_no_secret(w)
    finally:
        w.close()


def _ok(proc: Any) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "home:" in proc.stdout and "ok" in proc.stdout


def _account_failed(proc: Any) -> None:
    """The faulty pass failed the account with a message, and no traceback."""
    assert proc.returncode == 75, proc.stdout + proc.stderr
    assert "home" in proc.stderr


def test_reference_story_is_what_a_user_expects(reference: Any) -> None:
    people, tasks = reference
    assert people["Ada Friend"]["interactions"] == 1  # the Tea was deleted
    assert people["Kim Lo"]["interactions"] == 1
    states = sorted(t["state"] for t in tasks)
    assert {"done", "dismissed", "open", "resolved"} <= set(states), tasks


# -- truncated answers ---------------------------------------------------------------


def test_truncated_multiget_is_asked_again(world: DavWorld, reference: Any) -> None:
    """The pass's multiget answers 1 of the 3 changed events: the rest is fetched again, not lost.

    (A backfill takes its objects with the listing; the multiget is the next pass's.)
    """
    def fault(w: DavWorld) -> None:
        w.proxy.fault(method="REPORT", path=re.escape(w.cal), body="calendar-multiget", keep=1)
    story(world, before={"sync": fault}, check={"sync": _ok})
    assert outcome(world) == reference
    assert world.unserved == []  # type: ignore[attr-defined]


def test_truncated_sync_collection_is_completed(world: DavWorld, reference: Any) -> None:
    """The sync pass's answer lists 1 change of 5 and says it is truncated (RFC 6578 §3.6)."""
    def fault(w: DavWorld) -> None:
        w.proxy.fault(method="REPORT", path=re.escape(w.cal), body="sync-collection", keep=1, marker=True)
    story(world, before={"sync": fault}, check={"sync": _ok})
    assert outcome(world) == reference
    assert world.unserved == []  # type: ignore[attr-defined]


def test_truncated_full_listing_deletes_nothing(world: DavWorld, reference: Any) -> None:
    """The token is refused and the full re-listing leaves objects out: none is deleted."""
    def fault(w: DavWorld) -> None:
        w.proxy.fault(method="REPORT", path=re.escape(w.cal), body="sync-token>[^<]", status=403)
        w.proxy.fault(method="REPORT", path=re.escape(w.cal), body="sync-collection", keep=2)
    story(world, before={"sync": fault}, check={"sync": _ok})
    assert outcome(world) == reference
    assert world.unserved == []  # type: ignore[attr-defined]


def test_truncated_task_listing_dismisses_nothing(world: DavWorld, reference: Any) -> None:
    """The task calendar's first listing names 1 follow-up of 3, and its multiget returns none."""
    def fault(w: DavWorld) -> None:
        tasks = re.escape(w.tasks_href())
        w.proxy.fault(method="REPORT", path=tasks, body="sync-collection", keep=1)
        w.proxy.fault(method="REPORT", path=tasks, body="calendar-multiget", keep=0)
    story(world, before={"sync": fault}, check={"sync": _ok})
    assert outcome(world) == reference
    assert world.unserved == []  # type: ignore[attr-defined]


# -- 412 on create -------------------------------------------------------------------


def test_412_for_an_object_that_is_not_there(world: DavWorld, reference: Any) -> None:
    """The first two creations answer 412 without anything there: written anyway."""
    def fault(w: DavWorld) -> None:
        w.proxy.fault(method="PUT", path=r"/syncd-[0-9a-f]+\.ics$", status=412, times=2)
    story(world, before={"backfill": fault}, check={"backfill": _ok})
    people, tasks = outcome(world)
    assert (people, tasks) == reference
    assert world.unserved == []  # type: ignore[attr-defined]
    assert sorted(ours(world).values()) == sorted(  # one object each, no duplicate
        f"{world.tasks_href()}{t['uid']}.ics" for t in tasks if t["state"] != "dismissed")


def test_412_for_someone_elses_object(world: DavWorld, reference: Any) -> None:
    """Another client's object sits where a follow-up goes: left alone, the task goes elsewhere."""
    # a follow-up of the backfill that the user leaves alone (the third by due date)
    uid = sorted((t["due"], t["uid"]) for t in reference[1] if t["rule"] == "keep_in_touch")[2][1]
    cal = world.seed.mkcalendar(world.tasks_name, ("VTODO",))
    theirs = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other//EN\r\nBEGIN:VTODO\r\n"
        "UID:someone-elses\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Buy milk\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    )
    world.seed.put(f"{cal}{uid}.ics", theirs)
    before = world.seed.get(f"{cal}{uid}.ics")
    world.tasks_href = lambda: cal  # type: ignore[method-assign]  # not made by MKCALENDAR here
    story(world, check={"backfill": _ok})
    assert outcome(world) == reference
    assert world.unserved == []  # type: ignore[attr-defined]
    assert world.seed.get(f"{cal}{uid}.ics") == before
    assert f"{cal}{uid}-1.ics" in ours(world).values()  # ours, at another href


# -- transient faults ----------------------------------------------------------------


def test_connection_reset_mid_body_is_retried(world: DavWorld, reference: Any) -> None:
    """Answers break off mid-body, twice: retried within the pass like a 5xx."""
    def fault(w: DavWorld) -> None:
        w.proxy.fault(method="REPORT", path=re.escape(w.cal), cut=True, times=2)
    story(world, before={"backfill": fault, "sync": fault}, check={"backfill": _ok, "sync": _ok})
    assert outcome(world) == reference
    assert world.unserved == []  # type: ignore[attr-defined]


def test_long_retry_after_backs_off_instead_of_waiting(world: DavWorld, reference: Any) -> None:
    """A 503 asking for an hour: the pass fails at once with a message, the next one catches up.

    The fault hits the task calendar's listing, so the failed pass writes nothing. (On a
    source calendar the account fails the same way, but the core still reconciles
    with the data it had, so the day's follow-ups may differ from the reference's.)
    """
    mark = [0]

    def fault(w: DavWorld) -> None:
        w.proxy.fault(method="REPORT", path=re.escape(w.tasks_href()), status=503,
                      headers={"Retry-After": "3600"}, times=1)
        mark[0] = len(w.proxy.requests)

    def failed_fast(proc: Any) -> None:
        assert proc.returncode != 0, proc.stdout + proc.stderr
        assert "Retry-After 3600s" in proc.stderr and "backs off" in proc.stderr
        sent = world.proxy.requests[mark[0]:]
        assert [p for _, p in sent].count(world.tasks_href()) == 1, sent  # no retry storm

    story(world, before={"sync": fault}, check={"sync": failed_fast}, retry="sync")
    assert outcome(world) == reference
    assert world.unserved == []  # type: ignore[attr-defined]


def test_long_retry_after_on_a_source_keeps_the_token(world: DavWorld) -> None:
    """A 503 asking for an hour on the event calendar: exit 75 at once, nothing lost."""
    seed(world)
    world.run("--backfill", now=NOW)
    world.seed.delete(f"{world.cal}m-ada2.ics")
    world.proxy.fault(method="REPORT", path=re.escape(world.cal), status=503,
                      headers={"Retry-After": "3600"}, times=1)
    mark = len(world.proxy.requests)
    proc = world.run("sync", now=NOW, check=False)
    _account_failed(proc)
    assert "Retry-After 3600s" in proc.stderr and "backs off" in proc.stderr
    assert [p for _, p in world.proxy.requests[mark:]].count(world.cal) == 1
    assert world.people(now=NOW)["Ada Friend"]["interactions"] == 2  # not yet seen
    world.run("sync", now=NOW)
    assert world.people(now=NOW)["Ada Friend"]["interactions"] == 1

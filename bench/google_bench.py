"""Backfill and no-change pass of the google connector against the emulator.

Run: ``.venv/bin/python bench/google_bench.py [EVENTS] [CONTACTS]`` from the repo root.
Prints requests and wall time of a backfill of EVENTS events (default 20,000) and
CONTACTS contacts (default 2,000), then the requests of a no-change pass.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncd.context import AccountContext
from syncd_connectors.base import ChangeStream
from syncd_connectors.google import GoogleConnector
from tests.google.emulator import GoogleEmulator

EMAIL = "alice@example.org"


def seed(emu: GoogleEmulator, events: int, contacts: int) -> None:
    emu.add_calendar(EMAIL, "Alice", primary=True)
    emu.add_group("contactGroups/friends1", "Friends")
    start = dt.datetime(2021, 1, 1, 9, tzinfo=dt.UTC)
    for n in range(events):
        s = start + dt.timedelta(hours=3 * n)
        emu.add_event(EMAIL, {
            "summary": f"Meeting {n}",
            "start": {"dateTime": s.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "end": {"dateTime": (s + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "organizer": {"email": EMAIL, "self": True},
            "attendees": [{"email": EMAIL, "self": True, "responseStatus": "accepted"},
                          {"email": f"p{n % 500}@example.com", "displayName": f"Person {n % 500}",
                           "responseStatus": "accepted"}],
            **({"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]} if n % 50 == 0 else {}),
        })
    for n in range(contacts):
        emu.add_person({
            "names": [{"displayName": f"Person {n}", "givenName": "Person", "familyName": str(n)}],
            "emailAddresses": [{"value": f"p{n}@example.com"}],
            "birthdays": [{"date": {"month": 1 + n % 12, "day": 1 + n % 28}}],
            "memberships": [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/friends1"}}],
        })


def one_pass(emu: GoogleEmulator, ctx: AccountContext, cursors: dict[str, str | None],
             known: dict[str, dict[str, str]]) -> tuple[int, float, int]:
    before = len(emu.requests)
    t0 = time.perf_counter()
    conn = GoogleConnector("work", {"api_root": emu.url}, ctx)
    objects = 0
    for coll in conn.collections():
        seen = known.setdefault(coll.id, {})
        stream = ChangeStream(conn.changes(coll, cursors.get(coll.id), seen, dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
        for batch in stream:
            objects += len(batch.upserts)
            seen.update({o.href: o.etag for o in batch.upserts})
            for href in batch.deletes:
                seen.pop(href, None)
        cursors[coll.id] = stream.cursor
    conn.list_tasks()
    conn.close()
    return len(emu.requests) - before, time.perf_counter() - t0, objects


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    contacts = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    with GoogleEmulator() as emu:
        t0 = time.perf_counter()
        seed(emu, events, contacts)
        print(f"seeded {events} events, {contacts} contacts in {time.perf_counter() - t0:.1f}s")
        store = {"work": emu.authorized_user_json()}
        ctx = AccountContext(account="work", get_secret=store.__getitem__,
                             put_secret=store.__setitem__)
        cursors: dict[str, str | None] = {}
        known: dict[str, dict[str, str]] = {}
        reqs, secs, objs = one_pass(emu, ctx, cursors, known)
        print(f"backfill: {objs} objects, {reqs} requests (incl. token), {secs:.1f}s wall, "
              f"{objs / secs:.0f} objects/s")
        reqs, secs, objs = one_pass(emu, ctx, cursors, known)
        print(f"no-change pass: {reqs} requests, {objs} objects, {secs * 1000:.0f} ms")


if __name__ == "__main__":
    main()

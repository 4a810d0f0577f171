"""Benchmark of the CalDAV connector against a local Radicale (not part of the tests).

Generates 20,000 events in 3 calendars and 2,000 contacts (user ``alice``) plus a
2,000-event account (user ``small``, 3 calendars) straight into Radicale's storage
under /tmp, then prints:

- backfill wall time of the connector vs. a raw replay of the same REPORT requests
  with plain HTTP and no parsing (ratio; target <= 1.3);
- requests of a no-change pass (target: one per collection);
- cost of a pass after 10 changed events, 2,000 vs. 20,000 events (ratio);
- peak Python memory of a backfill (tracemalloc) and the process's max RSS.

Run: ``.venv/bin/python bench/caldav_bench.py [--events 20000] [--contacts 2000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import niquests

from connectors.caldav import CaldavConnector, dav, sync
from syncd.context import AccountContext
from tests.servers import Server, start_radicale

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
ROOT = Path("/tmp/syncd-caldav-bench")


def event(uid: str, i: int, summary: str = "Meeting") -> str:
    day = dt.date(2020, 1, 1) + dt.timedelta(days=i % 2000)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:{day:%Y%m%d}T100000Z\r\n"
        f"DURATION:PT1H\r\nSUMMARY:{summary} {i}\r\n"
        f"ORGANIZER;CN=Person {i % 300}:mailto:p{i % 300}@example.org\r\n"
        "ATTENDEE;CN=Alice:mailto:alice@example.org\r\n"
        f"ATTENDEE;CN=Person {i % 300}:mailto:p{i % 300}@example.org\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def vcard(i: int) -> str:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{i}\r\nFN:Person {i}\r\nN:{i};Person;;;\r\n"
        f"EMAIL:p{i}@example.org\r\nCATEGORIES:Friends\r\nEND:VCARD\r\n"
    )


def storage(server: Server, user: str, coll: str) -> Path:
    return server.root / "collections" / "collection-root" / user / coll.strip("/").split("/")[-1]


def generate(server: Server, user: str, calendars: dict[str, int], contacts: int) -> dict[str, str]:
    """Create collections over HTTP, then write their items straight into storage."""
    with server.htpasswd.open("a") as f:  # type: ignore[union-attr]
        f.write(f"{user}:pw\n")
    seed = server.seeder(user, "pw")
    paths = {}
    for name, n in calendars.items():
        path = seed.mkcalendar(name, slug=name.lower())
        folder = storage(server, user, path)
        for i in range(n):
            (folder / f"{name.lower()}-{i}.ics").write_text(event(f"{user}-{name.lower()}-{i}", i))
        paths[name] = path
    if contacts:
        path = seed.mkaddressbook("Contacts", slug="contacts")
        folder = storage(server, user, path)
        for i in range(contacts):
            (folder / f"card-{i}.vcf").write_text(vcard(i))
        paths["Contacts"] = path
    return paths


def connector(server: Server, user: str, state: dict[str, Any]) -> CaldavConnector:
    ctx = AccountContext(account="bench", state_dict=state, get_secret=lambda a: "pw",
                         put_secret=lambda a, v: None)
    return CaldavConnector("bench", {"url": server.url, "username": user}, ctx)


def backfill(conn: CaldavConnector) -> tuple[dict[str, str], dict[str, dict[str, str]], int]:
    """Drain every collection; returns cursors, known etags and the object count."""
    cursors, known, count = {}, {}, 0
    for col in conn.collections():
        etags = {}
        for batch in conn.changes(col, None, {}, SINCE):
            count += len(batch.upserts)
            etags.update({o.href: o.etag for o in batch.upserts})
            if batch.done:
                cursors[col.id] = batch.cursor or ""
        known[col.id] = etags
    return cursors, known, count


def raw_replay(server: Server, user: str, hrefs: dict[str, tuple[str, list[str]]]) -> float:
    """The same REPORTs with a plain session: sync-collection, then multiget chunks."""
    session = niquests.Session()
    session.auth = (user, "pw")
    headers = {**dav.XML_HEADERS, "Depth": "1"}
    t0 = time.perf_counter()
    for col, (ns, items) in hrefs.items():
        _ = session.request("REPORT", server.url.rstrip("/") + col,
                        data=dav.sync_collection(None, "D:getetag").encode(), headers=headers).content
        for i in range(0, len(items), sync.CHUNK):
            body = dav.multiget(ns, items[i : i + sync.CHUNK]).encode()
            _ = session.request("REPORT", server.url.rstrip("/") + col, data=body, headers=headers).content
    return time.perf_counter() - t0


def changed_pass(server: Server, user: str, state: dict[str, Any], cursors: dict[str, str],
                 known: dict[str, dict[str, str]], cal_path: str) -> tuple[float, int]:
    """Change 10 events of ``cal_path``, then time one incremental pass."""
    seed = server.seeder(user, "pw")
    name = cal_path.strip("/").split("/")[-1]
    for i in range(10):
        seed.put(f"{cal_path}{name}-{i}.ics", event(f"{user}-{name}-{i}", i, "Changed"))
    conn = connector(server, user, state)
    t0 = time.perf_counter()
    got = 0
    for col in conn.collections():
        for batch in conn.changes(col, cursors[col.id], known[col.id], SINCE):
            got += len(batch.upserts)
    elapsed = time.perf_counter() - t0
    assert got == 10, got
    return elapsed, conn.http.requests


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--contacts", type=int, default=2000)
    args = ap.parse_args()
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    server = start_radicale(ROOT)
    try:
        n = args.events
        big = {"Work": n // 2, "Personal": n * 2 // 5, "Family": n - n // 2 - n * 2 // 5}
        small = {k: v // 10 for k, v in big.items()}
        t0 = time.perf_counter()
        paths = generate(server, "alice2", big, args.contacts)
        small_paths = generate(server, "small", small, 0)
        print(f"generated {n} + {sum(small.values())} events, {args.contacts} contacts "
              f"in {time.perf_counter() - t0:.1f}s")

        # warm Radicale's item cache, so both timings see the same server
        t0 = time.perf_counter()
        for user in ("alice2", "small"):
            session = niquests.Session()
            session.auth = (user, "pw")
            for path in (paths if user == "alice2" else small_paths).values():
                _ = session.request("REPORT", server.url.rstrip("/") + path, timeout=600,
                                    data=dav.sync_collection(None, "D:getetag").encode(),
                                    headers={**dav.XML_HEADERS, "Depth": "1"}).content
        print(f"cold backfill (server cache filling): {time.perf_counter() - t0:.2f}s")

        timings = []
        for _ in range(3):
            state: dict[str, Any] = {}
            conn = connector(server, "alice2", state)
            conn.collections()  # discovery is not part of the comparison
            t0 = time.perf_counter()
            cursors, known, count = backfill(conn)
            t_conn = time.perf_counter() - t0
            requests = conn.http.requests
            hrefs = {col: ("CR" if "contacts" in col else "C", list(known[col])) for col in known}
            t_raw = raw_replay(server, "alice2", hrefs)
            timings.append((t_conn, t_raw))
        t_conn, t_raw = min(t[0] for t in timings), min(t[1] for t in timings)
        print(f"backfill: {count} objects, {requests} requests; connector {t_conn:.2f}s, "
              f"raw HTTP {t_raw:.2f}s, ratio {t_conn / t_raw:.2f} (target <= 1.3)")

        nochange = connector(server, "alice2", state)
        cols = nochange.collections()
        for col in cols:
            for _batch in nochange.changes(col, cursors[col.id], known[col.id], SINCE):
                pass
        print(f"no-change pass: {nochange.http.requests} requests for {len(cols)} collections")

        s_state: dict[str, Any] = {}
        s_cursors, s_known, _ = backfill(connector(server, "small", s_state))
        t_small, r_small = changed_pass(server, "small", s_state, s_cursors, s_known,
                                        small_paths["Work"])
        t_big, r_big = changed_pass(server, "alice2", state, cursors, known, paths["Work"])
        print(f"pass after 10 changed events: {sum(small.values())} events {t_small * 1000:.0f} ms "
              f"({r_small} requests), {n} events {t_big * 1000:.0f} ms ({r_big} requests), "
              f"ratio {t_big / t_small:.2f}")

        tracemalloc.start()
        backfill(connector(server, "alice2", {}))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak Python memory during backfill: {peak / 2**20:.1f} MiB (tracemalloc); "
              f"max RSS {rss:.0f} MiB")
        print(json.dumps({"backfill_s": round(t_conn, 3), "raw_s": round(t_raw, 3),
                          "ratio": round(t_conn / t_raw, 3), "nochange_requests": nochange.http.requests,
                          "collections": len(cols), "changed_small_ms": round(t_small * 1000),
                          "changed_big_ms": round(t_big * 1000), "peak_mib": round(peak / 2**20, 1)}))
    finally:
        server.stop()
        shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()

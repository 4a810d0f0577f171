"""Benchmark of the CalDAV connector against a local Radicale (not part of the tests).

Generates 20,000 events in 3 calendars and 2,000 contacts (user ``alice2``) plus a
2,000-event account (user ``small``, 3 calendars) straight into Radicale's storage
under /tmp, then prints:

- backfill wall time of the connector vs. a raw replay of the same REPORT requests
  with plain HTTP and no parsing (ratio; target <= 1.3);
- requests of a no-change pass (target: one per collection);
- cost of a pass after 10 changed events, 2,000 vs. 20,000 events (ratio; target
  <= 1.3), for the connector and for a raw baseline measured in the same run: the
  same requests (sync-collection REPORT with the previous token on every collection,
  then a multiget of the 10 changed hrefs) with plain HTTP and nothing parsed. Both
  ratios are printed side by side, plus connector/raw at each size (the client's own
  overhead); each figure is the best of ``--rounds`` passes, every pass after 10
  freshly changed events, connector and raw alternating;
- peak Python memory of a backfill (tracemalloc) and the process's max RSS.

The data is generated once and shared by every phase; Radicale's item cache is
warmed once (a full sync-collection per collection) before anything is timed.

Run: ``.venv/bin/python bench/caldav_bench.py [--events 20000] [--contacts 2000]
[--backfills 3] [--rounds 3]``; ``--quick`` is ``--events 2000 --contacts 200
--backfills 1 --rounds 1`` (about a minute). Full size takes about 8 minutes on 2
cores, half of it Radicale's cold first read of the generated items.
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

from syncd.context import AccountContext
from syncd_connectors.base import ChangeStream
from syncd_connectors.caldav import CaldavConnector, dav, sync
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
        stream = ChangeStream(conn.changes(col, None, {}, SINCE))
        for batch in stream:
            count += len(batch.upserts)
            etags.update({o.href: o.etag for o in batch.upserts})
        cursors[col.id] = stream.cursor or ""
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


def change_events(server: Server, user: str, cal_path: str, tag: str) -> list[str]:
    """Rewrite events 0-9 of ``cal_path`` (new content, new etags); their hrefs."""
    seed = server.seeder(user, "pw")
    name = cal_path.strip("/").split("/")[-1]
    hrefs = [f"{cal_path}{name}-{i}.ics" for i in range(10)]
    for i, href in enumerate(hrefs):
        seed.put(href, event(f"{user}-{name}-{i}", i, f"Changed {tag}"))
    return hrefs


def connector_pass(server: Server, user: str, state: dict[str, Any], cursors: dict[str, str],
                   known: dict[str, dict[str, str]]) -> tuple[float, int]:
    """One incremental pass of the connector from ``cursors``/``known``: time, requests."""
    conn = connector(server, user, state)
    t0 = time.perf_counter()
    got = 0
    for col in conn.collections():  # discovery is cached in ``state``: no request
        for batch in conn.changes(col, cursors[col.id], known[col.id], SINCE):
            got += len(batch.upserts)
    elapsed = time.perf_counter() - t0
    assert got == 10, got
    return elapsed, conn.http.requests


def raw_pass(server: Server, user: str, tokens: dict[str, str], cal_path: str,
             changed: list[str], tag: str) -> tuple[float, float, int]:
    """The connector's requests of that pass with a plain session, nothing parsed.

    A sync-collection REPORT with the previous token on every collection (in the
    connector's order), then one calendar-multiget of the 10 changed hrefs. Returns
    the total time, the part spent in the sync-collection REPORTs, and the requests.
    """
    session = niquests.Session()
    session.auth = (user, "pw")
    headers = {**dav.XML_HEADERS, "Depth": "1"}
    base = server.url.rstrip("/")
    bodies = {col: dav.sync_collection(tok, "D:getetag").encode() for col, tok in tokens.items()}
    multiget = dav.multiget("C", changed).encode()
    t0 = time.perf_counter()
    answers = {}
    for col, body in bodies.items():
        r = session.request("REPORT", base + col, data=body, headers=headers)
        answers[col] = (r.status_code, r.content)
    t_sync = time.perf_counter() - t0
    r = session.request("REPORT", base + cal_path, data=multiget, headers=headers)
    data = r.content
    elapsed = time.perf_counter() - t0
    # checked after the clock stopped: the server answered what the connector got
    assert all(status == 207 for status, _ in answers.values()), answers
    assert all(h.encode() in answers[cal_path][1] for h in changed), "sync answer lacks a change"
    assert r.status_code == 207 and (data or b"").count(f"Changed {tag} ".encode()) == 10
    return elapsed, t_sync, len(bodies) + 1


def changed_passes(server: Server, user: str, state: dict[str, Any], cursors: dict[str, str],
                   known: dict[str, dict[str, str]], cal_path: str, rounds: int) -> dict[str, Any]:
    """Best of ``rounds`` connector and raw passes, each after 10 freshly changed events.

    Every pass starts from the same cursors (the backfill's), so each sees exactly the
    10 events changed since then; the connector and the raw baseline alternate.
    """
    tokens = {col: json.loads(cur)["token"] for col, cur in cursors.items()}
    conn_t, raw_t, sync_t = [], [], []
    conn_req = raw_req = 0
    for r in range(rounds):
        for which in ("connector", "raw") if r % 2 == 0 else ("raw", "connector"):
            tag = f"{which}-{r}"
            changed = change_events(server, user, cal_path, tag)
            if which == "connector":
                t, conn_req = connector_pass(server, user, state, cursors, known)
                conn_t.append(t)
            else:
                t, ts, raw_req = raw_pass(server, user, tokens, cal_path, changed, tag)
                raw_t.append(t)
                sync_t.append(ts)
    return {"conn": min(conn_t), "raw": min(raw_t), "raw_sync": min(sync_t),
            "conn_req": conn_req, "raw_req": raw_req}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--contacts", type=int, default=2000)
    ap.add_argument("--backfills", type=int, default=3, help="timed backfills (best of)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="passes after 10 changed events, per size and side (best of)")
    ap.add_argument("--quick", action="store_true",
                    help="--events 2000 --contacts 200 --backfills 1 --rounds 1")
    args = ap.parse_args()
    if args.quick:
        args.events, args.contacts, args.backfills, args.rounds = 2000, 200, 1, 1
    started = time.perf_counter()
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
        for _ in range(args.backfills):
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
        ns = sum(small.values())
        sm = changed_passes(server, "small", s_state, s_cursors, s_known, small_paths["Work"],
                            args.rounds)
        bg = changed_passes(server, "alice2", state, cursors, known, paths["Work"], args.rounds)
        conn_ratio, raw_ratio = bg["conn"] / sm["conn"], bg["raw"] / sm["raw"]
        print(f"pass after 10 changed events (best of {args.rounds}; target: ratio <= 1.3):")
        heads = (f"{ns} events", f"{n} events", "ratio")
        print(f"  {'':<22}{heads[0]:>14}{heads[1]:>14}{heads[2]:>8}")
        for label, k in (("connector", "conn"), ("raw HTTP", "raw"),
                         ("  of which sync REPORTs", "raw_sync")):
            ratio = {"conn": conn_ratio, "raw": raw_ratio}.get(k, bg[k] / sm[k])
            print(f"  {label:<22}{sm[k] * 1000:>11.0f} ms{bg[k] * 1000:>11.0f} ms{ratio:>8.2f}")
        print(f"  {'connector/raw':<22}{sm['conn'] / sm['raw']:>14.2f}{bg['conn'] / bg['raw']:>14.2f}")
        reqs = [f"{d['conn_req']}/{d['raw_req']}" for d in (sm, bg)]
        print(f"  {'requests (conn/raw)':<22}{reqs[0]:>14}{reqs[1]:>14}")

        tracemalloc.start()
        backfill(connector(server, "alice2", {}))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak Python memory during backfill: {peak / 2**20:.1f} MiB (tracemalloc); "
              f"max RSS {rss:.0f} MiB")
        print(json.dumps({"backfill_s": round(t_conn, 3), "raw_s": round(t_raw, 3),
                          "ratio": round(t_conn / t_raw, 3), "nochange_requests": nochange.http.requests,
                          "collections": len(cols),
                          "changed_small_ms": round(sm["conn"] * 1000),
                          "changed_big_ms": round(bg["conn"] * 1000),
                          "changed_ratio": round(conn_ratio, 3),
                          "changed_raw_small_ms": round(sm["raw"] * 1000),
                          "changed_raw_big_ms": round(bg["raw"] * 1000),
                          "changed_raw_ratio": round(raw_ratio, 3),
                          "changed_overhead_small": round(sm["conn"] / sm["raw"], 3),
                          "changed_overhead_big": round(bg["conn"] / bg["raw"], 3),
                          "peak_mib": round(peak / 2**20, 1)}))
    finally:
        server.stop()
        shutil.rmtree(ROOT, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f}s (including data generation and cleanup)")


if __name__ == "__main__":
    main()

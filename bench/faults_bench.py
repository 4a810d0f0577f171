"""What a partial answer costs the CalDAV connector (not part of the tests).

Against a local Radicale behind the fault-injecting proxy (``tests/caldav/proxy.py``),
one calendar of ``--events`` events, prints for each fault: the requests and seconds
of the pass that meets it, whether the pass ended ok, and how many objects the ledger
side (the batches) holds afterwards, next to a clean pass:

- backfill: clean; every multiget returning half; every multiget returning nothing
  (one GET per object);
- incremental pass after 10 changes: clean; the sync-collection answer truncated with
  the RFC 6578 marker (continued, then checked with a PROPFIND of every etag);
- a 503 with ``Retry-After: 3600`` on every request: how long until the pass gives up.

Run: ``.venv/bin/python bench/faults_bench.py [--events 500]`` (about a minute).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncd.context import AccountContext
from syncd.errors import SyncdError
from syncd_connectors.base import ChangeStream, Collection
from syncd_connectors.caldav import CaldavConnector
from tests.caldav.proxy import CountingProxy
from tests.servers import Seeder, start_radicale

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def connector(url: str, user: str, password: str, state: dict[str, Any]) -> CaldavConnector:
    ctx = AccountContext(account="bench", state_dict=state, get_secret=lambda a: password,
                         put_secret=lambda a, v: None)
    return CaldavConnector("bench", {"url": url, "username": user, "calendars": None,
                                     "addressbooks": [], "tasks": "Follow-ups",
                                     "tasks_as": "todo", "verify": True}, ctx)


def run(conn: CaldavConnector, col: Collection, cursor: str | None,
        known: dict[str, str]) -> tuple[bool, str | None, dict[str, str], float]:
    """One pass over ``col``: ok, the new cursor, href -> etag after it, seconds."""
    held = dict(known)
    started = time.perf_counter()
    try:
        stream = ChangeStream(conn.changes(col, cursor, known, SINCE))
        for batch in stream:
            held.update({o.href: o.etag for o in batch.upserts})
            for h in batch.deletes:
                held.pop(h, None)
        return True, stream.cursor, held, time.perf_counter() - started
    except SyncdError:
        pass
    return False, cursor, held, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncd-faults-bench-") as tmp:
        server = start_radicale(Path(tmp))
        try:
            user, password = server.new_user()
            assert user and password
            seed = Seeder(server, user, password)
            cal = seed.mkcalendar("Bench")
            for i in range(args.events):
                seed.put(f"{cal}e{i}.ics", Seeder.event(f"e{i}", f"Meeting {i}"))
            rows: list[tuple[Any, ...]] = []
            with CountingProxy(server.url) as proxy:
                state: dict[str, Any] = {}
                conn = connector(proxy.url, user, password, state)
                conn.http.backoff = 0.01
                [col] = [c for c in conn.collections() if c.id == cal]

                def measure(name: str, cursor: str | None, known: dict[str, str],
                            **fault: Any) -> tuple[str | None, dict[str, str]]:
                    proxy.reset()
                    if fault:
                        proxy.fault(**fault)
                    conn.http.new_pass()
                    ok, new, held, secs = run(conn, col, cursor, known)
                    rows.append((name, proxy.count(), f"{secs:.2f}", "ok" if ok else "failed", len(held)))
                    return new, held

                cursor, held = measure("backfill, clean", None, {})
                measure("backfill, every multiget <= 100 answers", None, {}, method="REPORT", body="multiget",
                        keep=100, times=10**6)
                measure("backfill, every multiget empty", None, {}, method="REPORT", body="multiget",
                        keep=0, times=10**6)
                for step, faulty in ((0, False), (1, True)):
                    for i in range(10):
                        seed.put(f"{cal}e{i}.ics", Seeder.event(f"e{i}", f"Moved {step} {i}"))
                    extra = ({"method": "REPORT", "body": "sync-collection", "keep": 2, "marker": True}
                             if faulty else {})
                    name = "10 changes, sync answer truncated (507)" if faulty else "10 changes, clean"
                    cursor, held = measure(name, cursor, held, **extra)
                measure("Retry-After: 3600 on everything", cursor, held, status=503,
                        headers={"Retry-After": "3600"}, times=10**6)
            print(f"{args.events} events in one calendar (Radicale, loopback)")
            print(f"{'pass':42} {'requests':>8} {'seconds':>8} {'result':>7} {'objects':>8}")
            for name, n, secs, result, objs in rows:
                print(f"{name:42} {n:>8} {secs:>8} {result:>7} {objs:>8}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

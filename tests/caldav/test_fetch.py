"""How a backfill fetches (``sync.changes``): objects with the listing, or chunks run ahead.

Against real Radicale and Xandikos. A backfill asks for the objects in its listing's
REPORT; a server that refuses (a stock Radicale over 10,000 events; here one set to
refuse over 20) or sends none (Xandikos) gets a plain listing, the refusal is
remembered, and the objects come in multigets fetched ahead by a background thread.
Whatever the path, the backfill gives exactly the collection's objects, and the token
it took serves the next pass.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import TransientError
from syncd_connectors.base import ChangeStream
from syncd_connectors.caldav import FETCH_KEY, sync
from tests.caldav.test_contract import SINCE, Env, drain, one
from tests.servers import Seeder, Server, _wait, start_radicale

pytestmark = pytest.mark.servers

N = 45


@pytest.fixture(params=["radicale", "xandikos"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.getfixturevalue(request.param))
    yield e
    e.proxy.close()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk fetch from 20 objects on, in chunks of 7 (the real sizes need thousands)."""
    monkeypatch.setattr(sync, "BULK", 20)
    monkeypatch.setattr(sync, "BULK_CHUNK", 7)


def texts(seed: Seeder, path: str, tag: str, n: int) -> dict[str, str]:
    """Seed ``n`` events; href -> the summary each must come back with."""
    out = {}
    for i in range(n):
        seed.put(f"{path}e{i}.ics", Seeder.event(f"{tag}-e{i}", f"Meeting {i}"))
        out[f"{path}e{i}.ics"] = f"Meeting {i}"
    return out


def summaries(upserts: dict[str, object]) -> dict[str, str]:
    out = {}
    for href, obj in upserts.items():
        data = obj.data  # type: ignore[attr-defined]
        out[href] = data.split("SUMMARY:", 1)[1].splitlines()[0]
    return out


def test_backfill_in_chunks_then_the_token_serves(env: Env, small_chunks: None) -> None:
    """A refused listing-with-data: chunks fetched ahead give exactly the objects, once;
    the refusal is remembered; the token taken before them serves the next pass."""
    path, name = env.calendar()
    expected = texts(env.seed, path, env.tag, N)
    conn = env.connector(calendars=[name])
    col = one(conn, name)
    env.proxy.reset()
    env.proxy.fault(method="REPORT", body="calendar-data/></D:prop></D:sync-collection", status=400)
    d = drain(conn.changes(col, None, {}, SINCE))
    assert summaries(d.upserts) == expected
    assert sum(len(b.upserts) for b in d.batches) == N  # nothing twice
    assert len(d.batches) == 7 and d.batches[0].total == N  # ceil(45 / 7) chunks
    assert env.proxy.count("REPORT") == 2 + 7  # refused, the listing, 7 multigets
    assert env.state[FETCH_KEY] == {col.id: sync.LISTING_ONLY}
    assert not env.proxy.faults

    # a second backfill does not ask for the data again
    env.proxy.reset()
    again = drain(env.connector(calendars=[name]).changes(col, None, {}, SINCE))
    assert summaries(again.upserts) == expected
    assert env.proxy.count("REPORT") == 1 + 7

    # the next pass from the backfill's token: exactly what changed since
    known = {h: o.etag for h, o in d.upserts.items()}
    env.seed.put(f"{path}e3.ics", Seeder.event(f"{env.tag}-e3", "Moved"))
    env.seed.delete(f"{path}e4.ics")
    env.seed.put(f"{path}new.ics", Seeder.event(f"{env.tag}-new", "New"))
    env.proxy.reset()
    nxt = drain(env.connector(calendars=[name]).changes(col, d.cursor, known, SINCE))
    assert summaries(nxt.upserts) == {f"{path}e3.ics": "Moved", f"{path}new.ics": "New"}
    assert nxt.deletes == [f"{path}e4.ics"]
    assert env.proxy.count("REPORT") == 2  # the sync-collection, one multiget


def test_backfill_with_the_listing(env: Env) -> None:
    """Radicale sends the objects with the listing: one REPORT; Xandikos sends none:
    the listing's etags, then multigets, and that is remembered."""
    path, name = env.calendar()
    expected = texts(env.seed, path, env.tag, 5)
    conn = env.connector(calendars=[name])
    col = one(conn, name)
    env.proxy.reset()
    d = drain(conn.changes(col, None, {}, SINCE))
    assert summaries(d.upserts) == expected
    if env.server.kind == "radicale":
        assert env.proxy.count("REPORT") == 1 and FETCH_KEY not in env.state
    else:
        assert env.proxy.count("REPORT") == 2 and env.state[FETCH_KEY] == {col.id: sync.LISTING_ONLY}


def test_a_fetch_error_ahead_fails_the_pass(env: Env, small_chunks: None) -> None:
    """A chunk the background thread cannot fetch fails the pass in the caller, after
    the chunks before it; no token is handed over."""
    path, name = env.calendar()
    texts(env.seed, path, env.tag, N)
    conn = env.connector(calendars=[name])
    conn.http.attempts, conn.http.backoff = 2, 0.01
    col = one(conn, name)
    env.state[FETCH_KEY] = {col.id: sync.LISTING_ONLY}
    env.proxy.reset()
    batches = []
    stream = ChangeStream(conn.changes(col, None, {}, SINCE))
    with pytest.raises(TransientError):
        for i, b in enumerate(stream):
            batches.append(b)
            if i == 1:
                env.proxy.fault(method="REPORT", body="calendar-multiget", status=503, times=10)
    assert batches and not stream.ended and stream.cursor is None


@pytest.fixture(scope="module")
def strict_radicale() -> Iterator[Server]:
    """A Radicale that refuses a REPORT holding over 20 events (stock: 10,000)."""
    with tempfile.TemporaryDirectory(prefix="syncd-radicale-strict-") as tmp:
        server = start_radicale(Path(tmp))
        server.stop()
        config = server.root / "config"
        config.write_text(config.read_text() + "[reporting]\nmax_expand_occurrence = 20\n")
        server.proc = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(config)],
            stdout=server.logfile.open("ab"), stderr=subprocess.STDOUT,
        )
        _wait(server)
        try:
            yield server
        finally:
            server.stop()


def test_a_server_refusing_a_big_report(strict_radicale: Server, small_chunks: None) -> None:
    """The real refusal: the backfill still gives every object, and the next backfill
    of that collection skips the request that was refused."""
    env = Env(strict_radicale)
    try:
        path, name = env.calendar()
        expected = texts(env.seed, path, env.tag, N)
        path2, name2 = env.calendar(base="Small")
        small = texts(env.seed, path2, env.tag + "s", 5)
        col = one(env.connector(calendars=[name]), name)
        env.proxy.reset()
        d = drain(env.connector(calendars=[name]).changes(col, None, {}, SINCE))
        assert summaries(d.upserts) == expected
        assert env.state[FETCH_KEY] == {col.id: sync.LISTING_ONLY}
        assert env.proxy.count("REPORT") == 2 + 7
        env.proxy.reset()
        again = drain(env.connector(calendars=[name]).changes(col, None, {}, SINCE))
        assert summaries(again.upserts) == expected
        assert env.proxy.count("REPORT") == 1 + 7
        # a small collection on the same server still takes its objects with the listing
        col2 = one(env.connector(calendars=[name2]), name2)
        env.proxy.reset()
        d2 = drain(env.connector(calendars=[name2]).changes(col2, None, {}, SINCE))
        assert summaries(d2.upserts) == small and env.proxy.count("REPORT") == 1
    finally:
        env.proxy.close()


def test_a_backfill_takes_the_next_listing_ahead(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the core works on one collection's objects, the next collection's backfill
    listing is already on its way; every listing is still asked for once, and every
    collection comes whole."""
    monkeypatch.setattr(sync, "AHEAD", 3)  # from 3 objects on (the real size: 1,000)
    cals = [env.calendar(base=b) for b in ("Work", "Home", "Club")]
    expected = {name: texts(env.seed, path, f"{env.tag}{k}", 3 + k) for k, (path, name) in enumerate(cals)}
    _, book = env.book(3)
    conn = env.connector(calendars=[name for _, name in cals], addressbooks=[book])
    cols = conn.collections()
    assert [c.name for c in cols] == [*expected, book]
    env.proxy.reset()
    first = ChangeStream(conn.changes(cols[0], None, {}, SINCE))
    got = {cols[0].name: summaries({o.href: o for o in next(first).upserts})}
    deadline = time.monotonic() + 10
    while ("REPORT", cols[1].id) not in env.proxy.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ("REPORT", cols[1].id) in env.proxy.requests  # asked before the first collection is done
    for batch in first:
        got[cols[0].name].update(summaries({o.href: o for o in batch.upserts}))
    for col in cols[1:-1]:
        got[col.name] = summaries(drain(conn.changes(col, None, {}, SINCE)).upserts)
    assert got == expected
    cards = drain(conn.changes(cols[-1], None, {}, SINCE)).upserts
    assert sorted(o.data.split("FN:", 1)[1].split()[1] for o in cards.values()) == ["0", "1", "2"]
    per = 1 if env.server.kind == "radicale" else 2  # Xandikos: the listing, then one multiget
    assert [env.proxy.requests.count(("REPORT", c.id)) for c in cols] == [per] * len(cols)
    conn.close()

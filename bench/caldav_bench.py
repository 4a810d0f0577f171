"""Benchmark of the CalDAV connector against local Radicale and Xandikos (not part of the tests).

For each server, in one run, with N events (default 20,000) in 3 calendars plus 2,000
contacts, and a second account a tenth that size (same layout), it prints:

- ``syncd --backfill`` of the big account (the real command: fetch, parse, ledger);
- the plain-HTTP floors for fetching the same objects, each with a plain session and
  nothing parsed: calendar-query of every object (split into time-range chunks when the
  server refuses one REPORT that big), a sync-collection listing then multigets of 200
  hrefs, and one sync-collection REPORT asking for the data too; the fastest is the
  fetch floor;
- a plain parse of the same objects (``icalendar.Calendar.from_ical``) in one process
  and spread over 2 processes;
- the floor: the larger of the fastest fetch and the parse over 2 processes; the
  backfill's ratio to it (issue 8's bar: at most 1.2);
- with ``--vdirsyncer``: vdirsyncer 0.21 (installed into a throw-away venv under
  ``bench/data/``) syncing the same collections to a folder;
- connector passes at both sizes (best of ``--rounds``): no change, and after 10
  changed events; the work the 10 changes add (sync10 minus no-change) at each size and
  the ratio between the sizes; and the same requests from a plain session (each
  collection's sync-collection from the pass's cursor, a multiget of what it lists),
  so that the work the server adds (its sync-collection cost grows with the
  collection) stands apart from syncd's own. ``--passes-only`` measures these alone.

The data is generated straight into each server's storage (Radicale: item files;
Xandikos: one git commit per collection) and each collection is read once before
anything is timed, so every figure sees a warm server.

Run: ``.venv/bin/python bench/caldav_bench.py [--events 20000] [--contacts 2000]
[--rounds 3] [--servers radicale,xandikos] [--vdirsyncer]``; ``--events 2000
--contacts 200`` is a quick run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import niquests

from syncd.context import AccountContext
from syncd_connectors.base import ChangeStream
from syncd_connectors.caldav import CaldavConnector, dav, sync
from tests.helpers import pinned_keyring
from tests.servers import Server, start_radicale, start_xandikos

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
ROOT = Path("/tmp/syncd-caldav-bench")
HERE = Path(__file__).resolve().parent
VDIRSYNCER = "vdirsyncer==0.21.0"
HEADERS = {**dav.XML_HEADERS, "Depth": "1"}


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


@dataclass
class Account:
    """One generated account on one server: its collections by display name."""

    server: Server
    user: str | None
    password: str | None
    calendars: dict[str, str] = field(default_factory=dict)  # name -> path
    books: dict[str, str] = field(default_factory=dict)

    @property
    def paths(self) -> dict[str, str]:
        return {**self.calendars, **self.books}

    def session(self) -> niquests.Session:
        s = niquests.Session()
        if self.user:
            s.auth = (self.user, self.password or "")
        return s

    def url(self, path: str) -> str:
        return self.server.url.rstrip("/") + path


def _folder(server: Server, path: str) -> Path:
    if server.kind == "radicale":
        return server.root / "collections" / "collection-root" / path.strip("/")
    return server.root / "data" / path.replace("/user/", "user/", 1).strip("/")


def generate(server: Server, tag: str, calendars: dict[str, int], contacts: int) -> Account:
    """Create collections over HTTP, then write their items straight into storage."""
    user = password = None
    if server.kind == "radicale":
        user, password = f"bench{tag}", "pw"
        with server.htpasswd.open("a") as f:  # type: ignore[union-attr]
            f.write(f"{user}:{password}\n")
    acc = Account(server, user, password)
    seed = server.seeder(user, password)
    items: dict[str, list[tuple[str, str]]] = {}
    for name, n in calendars.items():
        slug = f"{tag}-{name.lower()}"
        path = seed.mkcalendar(f"{name} {tag}", slug=slug)
        acc.calendars[f"{name} {tag}"] = path
        items[path] = [(f"{slug}-{i}.ics", event(f"{tag}-{name.lower()}-{i}", i)) for i in range(n)]
    if contacts:
        path = seed.mkaddressbook(f"Contacts {tag}", slug=f"{tag}-contacts")
        acc.books[f"Contacts {tag}"] = path
        items[path] = [(f"card-{i}.vcf", vcard(i)) for i in range(contacts)]
    for path, objs in items.items():
        folder = _folder(server, path)
        for fname, text in objs:
            (folder / fname).write_text(text, newline="")
        if server.kind == "xandikos":  # a git-backed collection: the items are a commit
            git = ["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
            subprocess.run([*git, "add", "-A"], check=True)
            subprocess.run([*git, "commit", "-q", "-m", "generated"], check=True)
    return acc


# -- plain HTTP floors ---------------------------------------------------------------
def _bq() -> bytes:
    return (f'{dav.HEAD}<CR:addressbook-query {dav.NSDECL}><D:prop><D:getetag/><CR:address-data/>'
            "</D:prop></CR:addressbook-query>").encode()


def _cq(start: dt.datetime | None, end: dt.datetime | None) -> bytes:
    tr = ""
    if start is not None and end is not None:
        tr = f'<C:time-range start="{start:%Y%m%dT%H%M%SZ}" end="{end:%Y%m%dT%H%M%SZ}"/>'
        tr = f'<C:comp-filter name="VEVENT">{tr}</C:comp-filter>'
    return (f'{dav.HEAD}<C:calendar-query {dav.NSDECL}><D:prop><D:getetag/><C:calendar-data/></D:prop>'
            f'<C:filter><C:comp-filter name="VCALENDAR">{tr}</C:comp-filter></C:filter>'
            "</C:calendar-query>").encode()


def _data(content: bytes, ns: str) -> dict[str, str]:
    name = dav.q(dav.CR, "address-data") if ns == "CR" else dav.q(dav.C, "calendar-data")
    return {e.href: e.text(name) or "" for e in dav.parse(content).entries if e.text(name)}


def floor_query(acc: Account) -> tuple[float, dict[str, str], int]:
    """calendar-query of every object; a refused one is split into halves by time."""
    session, t0, out, requests = acc.session(), time.perf_counter(), {}, 0
    for path in acc.paths.values():
        ns = "CR" if path in acc.books.values() else "C"
        todo: list[tuple[dt.datetime | None, dt.datetime | None]] = [(None, None)]
        while todo:
            start, end = todo.pop()
            r = session.request("REPORT", acc.url(path), data=_cq(start, end) if ns == "C" else _bq(),
                                headers=HEADERS, timeout=600)
            requests += 1
            if r.status_code == 207:
                out.update(_raw_data(r.content or b"", ns))
                continue
            if ns == "CR" or (start is not None and end is not None and end - start < dt.timedelta(days=2)):
                raise SystemExit(f"{acc.server.kind}: query refused: HTTP {r.status_code}")
            lo = start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
            hi = end or dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
            mid = lo + (hi - lo) / 2
            todo += [(lo, mid), (mid, hi)]
    return time.perf_counter() - t0, out, requests


def _raw_data(content: bytes, ns: str) -> dict[str, str]:
    """href -> data, by a regex: the floor does no XML parse (the data is counted, not read)."""
    tag = "address-data" if ns == "CR" else "calendar-data"
    hrefs = re.findall(rb"<(?:\w+:)?href>([^<]+)</", content)
    datas = re.findall(rb"<(?:\w+:)?" + tag.encode() + rb"[^>/]*>(.*?)</", content, re.S)
    return {h.decode(): d.decode() for h, d in zip(hrefs, datas, strict=False)}


def floor_multiget(acc: Account, chunk: int) -> tuple[float, int]:
    """A sync-collection listing of every collection, then multigets of ``chunk`` hrefs."""
    session, t0, requests = acc.session(), time.perf_counter(), 0
    for path in acc.paths.values():
        ns = "CR" if path in acc.books.values() else "C"
        r = session.request("REPORT", acc.url(path), data=dav.sync_collection(None, "D:getetag").encode(),
                            headers=HEADERS, timeout=600)
        hrefs = [h.decode() for h in re.findall(rb"<(?:\w+:)?href>([^<]+\.(?:ics|vcf))</", r.content or b"")]
        requests += 1
        for i in range(0, len(hrefs), chunk):
            r = session.request("REPORT", acc.url(path), data=dav.multiget(ns, hrefs[i : i + chunk]).encode(),
                                headers=HEADERS, timeout=600)
            assert r.status_code == 207, r.status_code
            requests += 1
    return time.perf_counter() - t0, requests


def floor_sync_data(acc: Account, expect: int) -> tuple[float, int] | str:
    """One sync-collection REPORT per collection asking for the data too; why not, when
    the server refuses it or answers without the data (Xandikos)."""
    session, t0, got = acc.session(), time.perf_counter(), 0
    for path in acc.paths.values():
        ns = "CR" if path in acc.books.values() else "C"
        data = "CR:address-data" if ns == "CR" else "C:calendar-data"
        r = session.request("REPORT", acc.url(path), data=dav.sync_collection(None, "D:getetag", data).encode(),
                            headers=HEADERS, timeout=600)
        if r.status_code != 207:
            return f"refused (HTTP {r.status_code})"
        got += len(_raw_data(r.content or b"", ns))
    took = time.perf_counter() - t0
    return (took, len(acc.paths)) if got == expect else f"answered without the data ({got} of {expect})"


def _parse_all(texts: list[str]) -> int:
    import icalendar

    for text in texts:
        icalendar.Calendar.from_ical(text)
    return len(texts)


def plain_parse(texts: list[str], procs: int) -> float:
    """Seconds to parse ``texts`` with icalendar, in one process or spread over ``procs``."""
    if procs == 1:
        t0 = time.perf_counter()
        _parse_all(texts)
        return time.perf_counter() - t0
    parts = [texts[i::procs] for i in range(procs)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        pool.map(_parse_all, [["BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"]] * procs)  # workers started
        t0 = time.perf_counter()
        pool.map(_parse_all, parts)
        return time.perf_counter() - t0


# -- syncd ---------------------------------------------------------------------------
class Cli:
    """``syncd`` as a subprocess on one account, its password in a file keyring."""

    def __init__(self, root: Path, acc: Account) -> None:
        self.root, self.acc = root, acc
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.toml"
        login = f'username = "{acc.user}"\n' if acc.user else ""
        cals = ", ".join(json.dumps(n) for n in acc.calendars)
        books = ", ".join(json.dumps(n) for n in acc.books)
        self.config.write_text(
            f'[syncd]\nme = ["alice@example.org"]\ntimezone = "UTC"\nledger = "{root / "ledger.sqlite3"}"\n\n'
            f'[accounts.home]\ntype = "caldav"\nurl = "{acc.server.url}"\n{login}'
            f"calendars = [{cals}]\naddressbooks = [{books}]\n"
        )
        if acc.password:
            pinned_keyring(str(root / "data" / "python_keyring" / "keyring_pass.cfg")).set_password(
                "syncd", "home", acc.password)

    def run(self, *args: str) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XDG_"))}
        env.update(PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring", HOME=str(self.root),
                   XDG_DATA_HOME=str(self.root / "data"), SYNCD_NOW="2026-06-15T10:00:00Z", TZ="UTC")
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "syncd", "--config", str(self.config), "-q", *args],
                              capture_output=True, text=True, env=env, timeout=3600)
        took = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"syncd {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return took


# -- vdirsyncer ----------------------------------------------------------------------
def vdirsyncer_bin() -> Path:
    """vdirsyncer in a throw-away venv under bench/data/ (created on first use)."""
    venv = HERE / "data" / "vdirsyncer-venv"
    exe = venv / "bin" / "vdirsyncer"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", VDIRSYNCER], check=True)
    return exe


def vdirsyncer(root: Path, acc: Account) -> float:
    """Seconds of ``vdirsyncer sync`` copying the account's collections to a folder."""
    exe = vdirsyncer_bin()
    root.mkdir(parents=True, exist_ok=True)
    auth = f'username = "{acc.user}"\npassword = "{acc.password}"\n' if acc.user else ""
    conf = [f'[general]\nstatus_path = "{root / "status"}"\n']
    for kind, paths, ext in (("caldav", acc.calendars, ".ics"), ("carddav", acc.books, ".vcf")):
        for i, path in enumerate(paths.values()):
            name = f"{kind}{i}"
            conf.append(
                f'[pair {name}]\na = "{name}_remote"\nb = "{name}_local"\ncollections = null\n'
                f'[storage {name}_remote]\ntype = "{kind}"\nurl = "{acc.url(path)}"\n{auth}'
                f'[storage {name}_local]\ntype = "filesystem"\npath = "{root / "vdir" / name}"\n'
                f'fileext = "{ext}"\n')
            (root / "vdir" / name).mkdir(parents=True, exist_ok=True)
    (root / "config").write_text("\n".join(conf))
    env = {**os.environ, "VDIRSYNCER_CONFIG": str(root / "config")}
    subprocess.run([str(exe), "discover"], env=env, check=True, capture_output=True, input=b"y\n" * 20)
    t0 = time.perf_counter()
    done = subprocess.run([str(exe), "sync"], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"vdirsyncer sync failed:\n{done.stderr[-3000:]}")
    files = sum(1 for _ in (root / "vdir").rglob("*.*"))
    print(f"    vdirsyncer wrote {files} files")
    return took


# -- connector passes ----------------------------------------------------------------
def connector(acc: Account, state: dict[str, Any]) -> CaldavConnector:
    ctx = AccountContext(account="bench", state_dict=state, get_secret=lambda a: acc.password or "",
                         put_secret=lambda a, v: None)
    opts: dict[str, Any] = {"url": acc.server.url, "calendars": list(acc.calendars),
                            "addressbooks": list(acc.books)}
    if acc.user:
        opts["username"] = acc.user
    return CaldavConnector("bench", opts, ctx)


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


def one_pass(acc: Account, state: dict[str, Any], cursors: dict[str, str],
             known: dict[str, dict[str, str]], expect: int) -> float:
    conn = connector(acc, state)
    t0 = time.perf_counter()
    got = 0
    for col in conn.collections():  # discovery is cached in ``state``: no request
        for batch in conn.changes(col, cursors[col.id], known[col.id], SINCE):
            got += len(batch.upserts)
    took = time.perf_counter() - t0
    assert got == expect, (got, expect)
    return took


def plain_pass(acc: Account, cursors: dict[str, str], expect: int) -> float:
    """The requests of a connector pass from a plain session, nothing parsed: each
    collection's sync-collection REPORT from its cursor (etags only), then one multiget
    of what it lists (the server's share of a pass)."""
    session = acc.session()
    books = {acc.url(p) for p in acc.books.values()} | set(acc.books.values())
    t0, got = time.perf_counter(), 0
    for cid, cursor in cursors.items():
        token = json.loads(cursor).get("token") if cursor else None  # the connector's cursor: {"token": ...}
        url = cid if cid.startswith("http") else acc.url(cid)
        r = session.request("REPORT", url, data=dav.sync_collection(token or None, "D:getetag").encode(),
                            headers=HEADERS, timeout=600)
        assert r.status_code == 207, r.status_code
        hrefs = [h.decode() for h in re.findall(rb"<(?:\w+:)?href>([^<]+\.(?:ics|vcf))</", r.content or b"")]
        if hrefs:
            r = session.request("REPORT", url, data=dav.multiget("CR" if cid in books else "C", hrefs).encode(),
                                headers=HEADERS, timeout=600)
            assert r.status_code == 207, r.status_code
            got += len(hrefs)
    took = time.perf_counter() - t0
    assert got == expect, (got, expect)
    return took


def passes(acc: Account, rounds: int) -> dict[str, float]:
    """Best no-change pass and best pass after 10 changed events, from the backfill's
    cursors: the connector's, and the same requests from a plain session (after
    ``rounds`` times 2 sets of changes, each going first after half of them)."""
    state: dict[str, Any] = {}
    cursors, known, _ = backfill(connector(acc, state))
    nochange = min(one_pass(acc, state, cursors, known, 0) for _ in range(rounds))
    plain0 = min(plain_pass(acc, cursors, 0) for _ in range(rounds))
    cal = next(iter(acc.calendars.values()))
    slug = cal.strip("/").split("/")[-1]
    seed = acc.server.seeder(acc.user, acc.password)
    times, plain = [], []
    for r in range(rounds * 2):
        for i in range(10):
            seed.put(f"{cal}{slug}-{i}.ics", event(f"{slug}-{i}", i, f"Changed {r}"))
        # The first to ask after the writes pays for the server's working out what
        # changed (Xandikos: 80-120 ms at 20,000 events); in turn, each goes first.
        if r % 2:
            plain.append(plain_pass(acc, cursors, 10))
            times.append(one_pass(acc, state, cursors, known, 10))
        else:
            times.append(one_pass(acc, state, cursors, known, 10))
            plain.append(plain_pass(acc, cursors, 10))
    sync10, plain10 = min(times), min(plain)
    return {"nochange": nochange, "sync10": sync10, "work10": sync10 - nochange, "server0": plain0,
            "server10": plain10, "server_work10": plain10 - plain0,
            "own_work10": (sync10 - nochange) - (plain10 - plain0)}


# -- one server ----------------------------------------------------------------------
def bench_server(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    root = ROOT / kind
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "server").mkdir()
    server = (start_radicale if kind == "radicale" else start_xandikos)(root / "server")
    out: dict[str, Any] = {"server": kind}
    try:
        n = args.events
        big = {"Work": n // 2, "Personal": n * 2 // 5, "Family": n - n // 2 - n * 2 // 5}
        t0 = time.perf_counter()
        acc = generate(server, "big", big, args.contacts)
        small = generate(server, "small", {k: v // 10 for k, v in big.items()}, args.contacts // 10)
        print(f"{kind}: generated {n} + {n // 10} events, {args.contacts} + {args.contacts // 10} contacts "
              f"in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        for a in (acc, small):  # the server's caches are warm for every figure
            floor_multiget(a, 1000)
        print(f"  warm-up read {time.perf_counter() - t0:.1f}s")
        if args.passes_only:
            out["passes"] = {label: passes(a, args.rounds) for label, a in (("small", small), ("big", acc))}
            report_passes(out["passes"])
            return out

        t_query, texts, q_req = floor_query(acc)
        t_mg, mg_req = floor_multiget(acc, sync.CHUNK)
        t_mg_big, mg_big_req = floor_multiget(acc, 1000)
        sd = floor_sync_data(acc, n + args.contacts)
        fetches = {f"calendar-query ({q_req} REPORTs)": t_query,
                   f"listing + multiget of {sync.CHUNK} ({mg_req} REPORTs)": t_mg,
                   f"listing + multiget of 1000 ({mg_big_req} REPORTs)": t_mg_big}
        if isinstance(sd, tuple):
            fetches[f"sync-collection with data ({sd[1]} REPORTs)"] = sd[0]
        else:
            fetches[f"sync-collection with data: {sd}"] = float("nan")
        fetch = min(v for v in fetches.values() if v == v)
        values = list(texts.values())
        assert len(values) == n + args.contacts, (len(values), n + args.contacts)
        parse1 = plain_parse(values, 1)
        parse2 = plain_parse(values, 2)
        floor = max(fetch, parse2)
        cli = Cli(root / "syncd", acc)
        back = cli.run("--backfill", "--since", "2019-01-01")
        out.update(fetch=fetches, fetch_floor=fetch, parse1=parse1, parse2=parse2, floor=floor, backfill=back)
        if args.vdirsyncer:
            out["vdirsyncer"] = vdirsyncer(root / "vdirsyncer", acc)
        out["passes"] = {label: passes(a, args.rounds) for label, a in (("small", small), ("big", acc))}
        report(kind, n, out)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return out


def report(kind: str, n: int, out: dict[str, Any]) -> None:
    print(f"  {kind}, {n} events: plain-HTTP fetch of every object (no parse):")
    for label, t in out["fetch"].items():
        print(f"    {label:<48}{t:8.2f} s")
    print(f"  plain parse (icalendar): 1 process {out['parse1']:.2f} s, 2 processes {out['parse2']:.2f} s")
    floor = out["floor"]
    print(f"  floor = max(fastest fetch {out['fetch_floor']:.2f} s, parse on 2 cores {out['parse2']:.2f} s)"
          f" = {floor:.2f} s")
    print(f"  syncd --backfill {out['backfill']:8.2f} s   {out['backfill'] / floor:.2f}x floor (bar <= 1.2)")
    if "vdirsyncer" in out:
        v = out["vdirsyncer"]
        print(f"  vdirsyncer sync  {v:8.2f} s   syncd/vdirsyncer {out['backfill'] / v:.2f} (bar < 1)")
    report_passes(out["passes"])


def report_passes(p: dict[str, dict[str, float]]) -> None:
    print(f"  {'connector passes (best of rounds):':<38}{'small':>8}{'big':>11}{'ratio':>8}")
    for key, label in (("nochange", "no change"), ("sync10", "10 changed"), ("work10", "10 changed - no change"),
                       ("server0", "same requests, plain: no change"), ("server10", "same requests, plain: 10"),
                       ("server_work10", "the server's share of the work"),
                       ("own_work10", "the work beyond the server's")):
        s, b = p["small"][key] * 1000, p["big"][key] * 1000
        print(f"    {label:<34}{s:8.0f} ms{b:8.0f} ms{b / s if s > 0 else float('nan'):8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--contacts", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="connector passes per figure (best of)")
    ap.add_argument("--servers", default="radicale,xandikos")
    ap.add_argument("--vdirsyncer", action="store_true", help="also time vdirsyncer (installs it under bench/data/)")
    ap.add_argument("--passes-only", action="store_true", help="only the connector passes at both sizes")
    args = ap.parse_args()
    started = time.perf_counter()
    results = [bench_server(kind, args) for kind in args.servers.split(",")]
    print(json.dumps(results, default=lambda x: round(x, 3) if isinstance(x, float) else str(x)))
    print(f"total {time.perf_counter() - started:.0f}s (including data generation and cleanup)")


if __name__ == "__main__":
    main()

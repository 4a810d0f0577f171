"""A pass with nothing to do (issue 8): what it skips must never hide a change.

- vdir's ``settled`` note: an unchanged folder is neither compared nor read, but a
  pass that stopped between batches, a collection dropped and configured again, or a
  lost connector state always compare in full;
- vdir's kept listing: a changed folder is compared with the listing its note stands
  for, not with the ledger, and finds exactly what the ledger would;
- the entry-point cache: a connector installed, removed or changed is seen by the next
  run, through the ``syncd`` command; a dry run writes no cache;
- the ledger: a pass with nothing to do runs as many SQLite instructions over ten
  times the history.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import config
from syncd.context import AccountContext
from syncd.engine import Engine
from syncd.ledger import FollowupRow, Ledger
from syncd_connectors import vdir
from syncd_connectors.base import Collection
from syncd_connectors.vdir import VdirConnector
from tests.helpers import World, event, vcard

NOW = dt.datetime(2026, 6, 15, 10, tzinfo=dt.UTC)


# -- vdir: the settled note ------------------------------------------------------------
class Untouchable(Mapping[str, str]):
    """``known`` of a collection holding ``n`` objects that must not be read: only its length."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, href: str) -> str:
        raise AssertionError("known was read")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("known was read")


def _folder(tmp_path: Path, n: int) -> tuple[VdirConnector, Collection]:
    cal = tmp_path / "cal"
    cal.mkdir()
    for i in range(n):
        (cal / f"e{i}.ics").write_text(event(f"e{i}", "20260610T100000"), newline="")
    conn = VdirConnector("a", {"calendars": [cal]}, AccountContext(account="a", state_dict={}))
    [coll] = conn.collections()
    return conn, coll


def _list(conn: VdirConnector, coll: Collection, known: Mapping[str, str]) -> dict[str, str]:
    since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    return {o.href: o.etag for b in conn.changes(coll, None, known, since) for o in b.upserts}


def test_a_folder_is_settled_by_a_listing_that_ended(tmp_path: Path) -> None:
    conn, coll = _folder(tmp_path, 3)
    known = _list(conn, coll, {})
    assert len(known) == 3 and conn.ctx.state("settled")  # its batches are in: it notes its listing
    assert _list(conn, coll, Untouchable(3)) == {}  # which spares the next comparison
    (tmp_path / "cal" / "e1.ics").write_text(event("e1", "20260611T100000", "Moved"), newline="")
    changes = conn.changes(coll, None, known, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert [o.href for o in next(changes).upserts] == ["e1.ics"]
    assert not conn.ctx.state("settled")  # a listing that changes something removes it first
    assert list(changes) == [] and conn.ctx.state("settled")  # and notes its own once it ended


def test_a_listing_that_could_not_read_a_file_leaves_the_folder_unsettled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed file that could not be read keeps its old etag in the ledger while the
    folder lists its new one: the next listing must compare, and read it once it can."""
    conn, coll = _folder(tmp_path, 3)
    known = _list(conn, coll, {})
    (tmp_path / "cal" / "e1.ics").write_text(event("e1", "20260611T100000", "Moved"), newline="")
    real = vdir._read

    def denied(path: Path) -> str:
        if path.name == "e1.ics":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(vdir, "_read", denied)
    assert _list(conn, coll, known) == {} and not conn.ctx.state("settled")
    monkeypatch.setattr(vdir, "_read", real)
    with pytest.raises(AssertionError, match="known was read"):
        _list(conn, coll, Untouchable(3))
    assert list(_list(conn, coll, known)) == ["e1.ics"]


def test_a_settled_folder_is_compared_when_anything_moved(tmp_path: Path) -> None:
    conn, coll = _folder(tmp_path, 3)
    known = _list(conn, coll, {})
    _list(conn, coll, known)
    with pytest.raises(AssertionError, match="known was read"):
        _list(conn, coll, Untouchable(2))  # the ledger holds another count
    (tmp_path / "cal" / "e1.ics").write_text(event("e1", "20260611T100000", "Moved"), newline="")
    with pytest.raises(AssertionError, match="known was read"):
        _list(conn, coll, Untouchable(3))  # a file changed
    assert list(_list(conn, coll, known)) == ["e1.ics"]


def test_a_folder_that_is_calendar_and_address_book_settles_as_both(tmp_path: Path) -> None:
    from tests.helpers import vcard

    conn, cal = _folder(tmp_path, 2)
    (tmp_path / "cal" / "ana.vcf").write_text(vcard("Ana", "ana@example.com"), newline="")
    conn = VdirConnector("a", {"calendars": [tmp_path / "cal"], "addressbooks": [tmp_path / "cal"]}, conn.ctx)
    book = next(c for c in conn.collections() if c.kind != cal.kind)
    events, cards = _list(conn, cal, {}), _list(conn, book, {})
    assert (len(events), len(cards)) == (2, 1)
    _list(conn, cal, events)
    _list(conn, book, cards)  # each settles under its own kind
    assert _list(conn, cal, Untouchable(2)) == {} and _list(conn, book, Untouchable(1)) == {}


# -- vdir: the kept listing ---------------------------------------------------------------
def test_a_kept_listing_spares_the_ledger_when_a_folder_changed(tmp_path: Path) -> None:
    conn, coll = _folder(tmp_path, 3)
    conn.ctx.cache = tmp_path / "cache"
    known = _list(conn, coll, {})
    (tmp_path / "cal" / "e1.ics").write_text(event("e1", "20260611T100000", "Moved"), newline="")
    (tmp_path / "cal" / "e2.ics").unlink()
    (tmp_path / "cal" / "e3.ics").write_text(event("e3", "20260612T100000"), newline="")
    changes = conn.changes(coll, None, Untouchable(3), dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    batches = list(changes)
    assert [o.href for b in batches for o in b.upserts] == ["e1.ics", "e3.ics"]
    assert [h for b in batches for h in b.deletes] == ["e2.ics"]
    [kept] = (tmp_path / "cache").iterdir()
    assert kept.stat().st_mode & 0o777 == 0o600 and len(known) == 3


def test_a_kept_listing_that_is_not_the_noted_one_is_not_used(tmp_path: Path) -> None:
    """Another ledger's listing of the same folder, a cut file, a lost cache, or a
    ledger holding another count: the folder is compared with the ledger."""
    conn, coll = _folder(tmp_path, 3)
    conn.ctx.cache = tmp_path / "cache"
    known = _list(conn, coll, {})
    [kept] = (tmp_path / "cache").iterdir()
    (tmp_path / "cal" / "e1.ics").write_text(event("e1", "20260611T100000", "Moved"), newline="")
    other = VdirConnector("a", {"calendars": [tmp_path / "cal"]},
                          AccountContext(account="a", state_dict={}, cache=tmp_path / "cache"))
    _list(other, coll, {})  # keeps the new listing under the same name
    with pytest.raises(AssertionError, match="known was read"):
        _list(conn, coll, Untouchable(3))
    kept.write_bytes(kept.read_bytes()[:-5])
    with pytest.raises(AssertionError, match="known was read"):
        _list(conn, coll, Untouchable(3))
    kept.unlink()
    with pytest.raises(AssertionError, match="known was read"):
        _list(conn, coll, Untouchable(3))
    assert list(_list(conn, coll, known)) == ["e1.ics"]


def test_kept_listings_of_folders_no_longer_configured_go(tmp_path: Path) -> None:
    _folder(tmp_path, 2)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.ics").write_text(event("x", "20260610T100000"), newline="")
    ctx = AccountContext(account="a", state_dict={}, cache=tmp_path / "cache")
    both = VdirConnector("a", {"calendars": [tmp_path / "cal", other]}, ctx)
    for c in both.collections():
        _list(both, c, {})
    assert len(list((tmp_path / "cache").iterdir())) == 2
    one = VdirConnector("a", {"calendars": [tmp_path / "cal"]}, ctx)
    (tmp_path / "cal" / "e2.ics").write_text(event("e2", "20260612T100000"), newline="")
    [c] = one.collections()
    assert list(_list(one, c, Untouchable(2))) == ["e2.ics"]  # compared with its kept listing
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [one._kept_path(f"events:{c.id}").name]  # type: ignore[union-attr]


_FILES = st.sampled_from([f"f{i}.ics" for i in range(6)])
_STEP = st.tuples(st.sampled_from(["write", "delete", "touch", "resize", "unreadable"]), _FILES)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds=st.lists(st.lists(_STEP, max_size=5), min_size=1, max_size=6))
def test_a_kept_listing_finds_what_the_ledger_finds(tmp_path_factory: pytest.TempPathFactory,
                                                   rounds: list[list[tuple[str, str]]]) -> None:
    """For any edits between listings (files written, deleted, touched, rewritten with
    their old mtime, or unreadable for one listing), a connector with a kept listing reports the same changes as one
    that always compares with the ledger, and both leave the ledger as the folder is."""
    root = tmp_path_factory.mktemp("kept")
    folder = root / "cal"
    folder.mkdir()
    fast = VdirConnector("a", {"calendars": [folder]}, AccountContext(account="a", state_dict={}, cache=root / "c"))
    slow = VdirConnector("a", {"calendars": [folder]}, AccountContext(account="a", state_dict={}))
    [coll] = fast.collections()
    ledgers: dict[str, dict[str, str]] = {"fast": {}, "slow": {}}
    tick = 1_700_000_000 * 10**9
    real = vdir._read
    for n, steps in enumerate(rounds):
        denied = set()
        for what, name in steps:
            path = folder / name
            tick += 10**9
            if what == "write":
                path.write_text(event(name, "20260610T100000", "x" * (tick % 7)), newline="")
                os.utime(path, ns=(tick, tick))
            elif what == "delete":
                path.unlink(missing_ok=True)
            elif what == "touch" and path.exists():
                os.utime(path, ns=(tick, tick))
            elif what == "resize" and path.exists():  # as a restore does: another size, the same mtime
                was = path.stat()
                path.write_text(path.read_text() + "X-EXTRA:1\r\n", newline="")
                os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns))
            elif what == "unreadable":
                denied.add(name)

        def reading(path: Path, denied: set[str] = denied) -> str:
            if path.name in denied:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        vdir._read = reading
        try:
            seen = {}
            for who, conn in (("fast", fast), ("slow", slow)):
                known, found = ledgers[who], []
                for b in conn.changes(coll, None, dict(known), dt.datetime(2000, 1, 1, tzinfo=dt.UTC)):
                    known.update((o.href, o.etag) for o in b.upserts)
                    for href in b.deletes:
                        known.pop(href, None)
                    found.append(([o.href for o in b.upserts], b.deletes))
                seen[who] = found
        finally:
            vdir._read = real
        assert seen["fast"] == seen["slow"], f"round {n}"
        assert ledgers["fast"] == ledgers["slow"]
        if not denied:
            assert ledgers["fast"] == vdir._scan(folder, ".ics")


def test_syncd_keeps_listings_privately_and_sees_each_change(tmp_path: Path) -> None:
    """Through the ``syncd`` command: the kept listings are private, and the passes
    after edits, with the cache kept, lost or cut, see every change."""
    world = World(tmp_path)
    world.add_event("e0", event("e0", "20260610T100000", "Meeting", ["ana@example.com"]))
    world.run("sync")
    [folder] = (world.root / ".cache" / "syncd" / "accounts" / "files").iterdir()  # this ledger's
    kept = sorted(folder.iterdir())
    assert kept and all(f.stat().st_mode & 0o777 == 0o700 for f in (folder, folder.parent, folder.parent.parent))
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in kept)
    world.add_event("e1", event("e1", "20260611T100000", "Lunch", ["bob@example.com"]))
    world.run("sync")
    assert {"ana@example.com", "bob@example.com"} <= set(world.people())
    (world.cal / "e0.ics").unlink()
    world.add_event("e2", event("e2", "20260612T100000", "Coffee", ["cy@example.com"]))
    for path in folder.iterdir():
        path.write_bytes(path.read_bytes()[:40])
    world.run("sync")
    shutil.rmtree(folder)
    world.add_event("e3", event("e3", "20260613T100000", "Tea", ["dee@example.com"]))
    world.run("sync")
    people = world.people()
    assert "ana@example.com" not in people
    assert {"bob@example.com", "cy@example.com", "dee@example.com"} <= set(people)


def _personal(world: World) -> dict[str, str] | None:
    """href -> etag the ledger holds of the folder ``personal`` (None: no such collection)."""
    ledger = Ledger.open(world.root / "state" / "ledger.sqlite3")
    try:
        found = [c for c in ledger.collections("files") if c.name == "personal"]
        return ledger.etags(found[0].id) if found else None
    finally:
        ledger.close()


class Stop(Exception):
    """A pass killed between two committed batches."""


def test_a_pass_stopped_between_batches_leaves_the_folder_unsettled(tmp_path: Path) -> None:
    """The note goes with the first batch of a listing that changes something: a
    pass killed after that batch, then the folder put back exactly as it was (same
    mtimes and sizes, as a backup restore does), still gets the ledger back to the
    folder."""
    world = World(tmp_path)
    for i in range(3):
        world.add_event(f"e{i}", event(f"e{i}", "20260610T100000", f"Meeting {i}", [f"p{i}@example.com"]))
    world.run("sync")
    world.run("sync")  # nothing changed: settled
    path = world.cal / "e0.ics"
    before, st = path.read_bytes(), path.stat()
    settled = _personal(world)
    assert settled is not None
    path.write_bytes(before.replace(b"Meeting 0", b"Moved 0!!"))  # same size, another mtime
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    def stop(*args: object) -> None:
        raise Stop  # called after each committed batch

    cfg = config.load(world.config)
    ledger = Ledger.open(cfg.ledger)
    engine = Engine(cfg, ledger, now=lambda: NOW, progress=stop)
    try:
        assert isinstance(engine.sync_account("files").exc, Stop)
    finally:
        engine.close()
        ledger.close()
    assert _personal(world) != settled  # the edit went in; the listing did not end

    path.write_bytes(before)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as the settled listing saw it
    world.run("sync")
    assert _personal(world) == settled


def test_a_folder_configured_again_is_read_again(tmp_path: Path) -> None:
    """A folder dropped from the config is forgotten; named again, it is imported again
    although its settled note may still be in the connector state."""
    world = World(tmp_path)
    world.add_event("e0", event("e0", "20260610T100000", "Meeting", ["ana@example.com"]))
    world.add_event("w0", event("w0", "20260611T100000", "Work", ["bob@example.com"]), second=True)
    world.run("sync")
    world.run("sync")  # settled
    text = world.config.read_text()
    world.config.write_text(text.replace(f'calendars = ["{world.root / "calendars"}/*"]',
                                         f'calendars = ["{world.cal2}"]'))
    world.run("sync")
    assert _personal(world) is None  # forgotten
    world.config.write_text(text)
    world.run("sync")
    assert list(_personal(world) or {}) == ["e0.ics"]


# -- the ledger ---------------------------------------------------------------------------
def _quiet_pass_steps(world: World) -> int:
    """SQLite's virtual-machine instructions in an in-process pass that finds nothing to do."""
    cfg = config.load(world.config)
    ledger = Ledger.open(cfg.ledger)
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0  # go on

    ledger.conn.set_progress_handler(step, 1)  # called at every instruction
    engine = Engine(cfg, ledger, now=lambda: NOW)
    try:
        result = engine.run_pass()
    finally:
        engine.close()
        ledger.close()
    assert result.ok and [a.changed for a in result.accounts] == [0]
    return steps[0]


def _history(root: Path, meetings: int, series: int, closed: int) -> World:
    """A world of ``meetings`` single meetings and ``series`` weekly ones, all with the
    same two people, and ``closed`` follow-ups done over the past years, synced until
    nothing is left to do."""
    world = World(root)
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com", groups="Friends"))
    for i in range(meetings):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=i * 7 % 500)
        world.add_event(f"e{i}", event(f"e{i}", f"{day:%Y%m%d}T{8 + i % 9:02d}0000", f"Meeting {i}",
                                       ["ana@example.com", "bo@example.com"]), second=bool(i % 2))
    for i in range(series):
        world.add_event(f"w{i}", event(f"w{i}", f"202601{1 + i % 28:02d}T070000", f"Weekly {i}",
                                       ["ana@example.com"], extra=["RRULE:FREQ=WEEKLY"]))
    now = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    world.run("sync", now=now)
    ledger = Ledger.open(config.load(world.config).ledger)
    with ledger.transaction():
        for i in range(closed):
            due = dt.date(2020, 1, 1) + dt.timedelta(days=7 * i)
            ledger.put_followup(FollowupRow(
                uid=f"old-{i}", rule="keep_in_touch", key="ana", person="ana", name="Ana Lima",
                emails=["ana@example.com"], cycle=f"c{i}", due=due, summary="Catch up with Ana Lima",
                reason="it was due", account="files", state="done", written_on=due,
                closed_at=dt.datetime.combine(due, dt.time(12), dt.UTC)))
    ledger.close()
    world.run("sync", now=now)  # the folders settle
    return world


def test_a_pass_with_nothing_to_do_costs_the_same_whatever_the_history(tmp_path: Path) -> None:
    """Ten times the meetings, series and closed follow-ups, and a pass that finds
    nothing to do runs as many SQLite instructions: it reads no table whole, nor all
    of a collection (a count of a collection's objects, the recurring series to
    expand further and the open follow-ups each read every row until schema 6)."""
    small = _quiet_pass_steps(_history(tmp_path / "small", 6, 2, 10))
    big = _quiet_pass_steps(_history(tmp_path / "big", 60, 20, 100))
    assert small > 100 and big <= small * 1.02, (small, big)


# -- the entry-point cache ---------------------------------------------------------------
def _plugin(site: Path, kind: str, value: str = "syncd_connectors.vdir:VdirConnector") -> Path:
    """A distribution on ``site`` that registers the vdir connector as ``kind``."""
    info = site / "syncd_cache_probe-0.dist-info"
    shutil.rmtree(info, ignore_errors=True)
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: syncd-cache-probe\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[syncd.connectors]\n{kind} = {value}\n")
    return info


class PluginWorld(World):
    """A world with a folder ``site`` on PYTHONPATH, where tests install distributions."""

    def __init__(self, root: Path) -> None:
        self.site = root / "site"
        self.site.mkdir(parents=True)
        super().__init__(root)

    def env(self, now: str | None) -> dict[str, str]:
        env = super().env(now)
        env["PYTHONPATH"] = os.pathsep.join([str(self.site), *filter(None, [env.get("PYTHONPATH")])])
        return env

    def use(self, kind: str) -> None:
        """Make the account's type ``kind``."""
        self.write_config(extra="")
        self.config.write_text(self.config.read_text().replace('type = "vdir"', f'type = "{kind}"'))

    @property
    def cache(self) -> Path:
        return self.root / ".cache" / "syncd" / "entry-points.json"


def test_a_connector_installed_or_removed_is_seen_by_the_next_run(tmp_path: Path) -> None:
    world = PluginWorld(tmp_path)
    world.add_event("e0", event("e0", "20260610T100000", "Meeting", ["ana@example.com"]))
    world.run("sync")
    assert "probe" not in world.cache.read_text()  # what was found is cached

    info = _plugin(world.site, "probe")
    world.use("probe")
    world.run("sync")  # installed: found although the cache did not know it
    world.run("sync")  # and found again from the cache

    shutil.rmtree(info)
    gone = world.run("sync", check=False)
    assert gone.returncode == 69 and "'probe'" in gone.stderr  # removed: gone at once

    _plugin(world.site, "other")
    renamed = world.run("sync", check=False)
    assert renamed.returncode == 69 and "other" in renamed.stderr  # another name, another plugin
    (world.site / "syncd_cache_probe-0.dist-info" / "entry_points.txt").write_text(
        "[syncd.connectors]\nprobe = syncd_connectors.vdir:VdirConnector\n")  # edited in place
    world.run("sync")


def test_the_cache_is_what_a_run_reads(tmp_path: Path) -> None:
    """While nothing is installed or removed, a run takes the entry points from the
    cache (so a cache entry naming another class is what gets loaded)."""
    world = PluginWorld(tmp_path)
    _plugin(world.site, "probe")
    world.use("probe")
    world.run("sync")
    data = json.loads(world.cache.read_text())
    for entry in data["entries"]:
        entry["entry_points"]["probe"] = "syncd_connectors.vdir:NoSuchClass"
    world.cache.write_text(json.dumps(data))
    proc = world.run("sync", check=False)
    assert proc.returncode == 69 and "NoSuchClass" in proc.stderr
    world.cache.write_text("{not json")  # a broken cache is only a cache miss
    world.run("sync")


def test_a_dry_run_or_a_bad_config_writes_no_cache(tmp_path: Path) -> None:
    world = PluginWorld(tmp_path)
    world.use("probe")
    assert world.run("sync", check=False).returncode == 69  # no such connector: nothing done
    _plugin(world.site, "probe")
    world.add_event("e0", event("e0", "20260610T100000", "Meeting", ["ana@example.com"]))
    world.run("sync", "--dry-run")
    assert not (world.root / ".cache").exists()
    world.run("sync")
    assert world.cache.exists()


def test_the_cache_file_is_private(tmp_path: Path) -> None:
    world = PluginWorld(tmp_path)
    world.run("sync")
    assert world.cache.stat().st_mode & 0o777 == 0o600
    assert world.cache.parent.stat().st_mode & 0o777 == 0o700


def test_two_configs_with_an_account_of_one_name_keep_their_listings_apart(tmp_path: Path) -> None:
    """Two configs (a ledger each) name their vdir account alike, over other folders:
    a pass of one leaves the other's kept listings in place (before, it removed them as
    listings of folders it does not list, and the other's next pass after a change
    compared the whole folder with its ledger again)."""
    world = World(tmp_path)
    world.add_event("e0", event("e0", "20260610T100000", "Meeting", ["ana@example.com"]))
    other = tmp_path / "other"
    (other / "cal").mkdir(parents=True)
    (other / "cal" / "o0.ics").write_text(event("o0", "20260610T100000", "Tea", ["bob@example.com"]), newline="")
    text = world.config.read_text()
    other_config = tmp_path / "other.toml"
    other_config.write_text(text.replace(str(world.root / "state"), str(other / "state"))
                            .replace(str(world.tasks), str(other / "tasks"))
                            .replace(f'["{world.root / "calendars"}/*"]', f'["{other / "cal"}"]'))
    world.run("sync")
    mine = sorted((world.root / ".cache" / "syncd" / "accounts" / "files").rglob("*.listing"))
    assert mine
    proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(other_config), "sync"],
                          capture_output=True, text=True, env=world.env("2026-06-15T10:00:00Z"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert set(mine) <= set((world.root / ".cache" / "syncd" / "accounts" / "files").rglob("*.listing"))
    assert len(list((world.root / ".cache" / "syncd" / "accounts" / "files").iterdir())) == 2

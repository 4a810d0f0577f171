"""A pass with nothing to do (issue 8): what it skips must never hide a change.

- vdir's ``settled`` note: an unchanged folder is neither compared nor read, but a
  pass that stopped between batches, a collection dropped and configured again, or a
  lost connector state always compare in full;
- the entry-point cache: a connector installed, removed or changed is seen by the next
  run, through the ``syncd`` command; a dry run writes no cache.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from syncd import config
from syncd.context import AccountContext
from syncd.engine import Engine
from syncd.ledger import Ledger
from syncd_connectors.base import Collection
from syncd_connectors.vdir import VdirConnector
from tests.helpers import World, event

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


def test_an_unchanged_folder_is_settled_after_one_listing_without_changes(tmp_path: Path) -> None:
    conn, coll = _folder(tmp_path, 3)
    known = _list(conn, coll, {})
    assert len(known) == 3 and not conn.ctx.state("settled")  # it changed things: no note
    assert _list(conn, coll, known) == {}  # nothing to change: the note is taken
    assert _list(conn, coll, Untouchable(3)) == {}  # and spares the comparison


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

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
from pathlib import Path

from tests.helpers import World, event

NOW = dt.datetime(2026, 6, 15, 10, tzinfo=dt.UTC)


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

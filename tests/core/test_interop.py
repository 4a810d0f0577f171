"""Interop: the follow-ups syncd writes into a vdir, read and completed by todoman."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import World, vcard

NOW = "2026-06-15T10:00:00Z"
TODO = shutil.which("todo", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(TODO is None, reason="todoman is not installed (test extra)")


def _todo(world: World, *args: str) -> str:
    cfg = world.root / "todoman.py"
    cfg.write_text(f'path = "{world.tasks}"\ndate_format = "%Y-%m-%d"\n')
    env = world.env(None)
    env["XDG_CACHE_HOME"] = str(world.root / "cache")
    out = subprocess.run([str(TODO), "--config", str(cfg), *args], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_todoman_lists_and_completes_what_syncd_wrote(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.add_contact("dana", vcard("Dana Park", "dana@example.com", bday="1990-06-18"))
    world.run("--backfill", now=NOW)
    listed = json.loads(_todo(world, "--porcelain", "list"))
    by_summary = {t["summary"]: t for t in listed}
    assert set(by_summary) == {"Catch up with Bob Stone", "Dana Park's birthday (18 Jun)"}
    assert by_summary["Catch up with Bob Stone"]["description"].startswith("never met; Friends every 30 days")
    assert not any(t["completed"] for t in listed)
    # the user ticks it off in todoman; syncd reads it back as done
    _todo(world, "done", str(by_summary["Catch up with Bob Stone"]["id"]))
    world.run("sync", now="2026-06-16T10:00:00Z")
    states = {t["person"]: t["state"] for t in world.tasks_json(now="2026-06-16T10:00:00Z")}
    assert states == {"Bob Stone": "done", "Dana Park": "open"}

"""A single user never loads the team mode's libraries (SPEC §9: the single-user mode
must not get heavier)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import World, event, vcard

TEAM_ONLY = ("psycopg", "psycopg_pool", "procrastinate", "cryptography", "syncd.team", "syncd.teamjobs",
             "syncd.pgledger")


def test_syncd_sync_on_a_vdir_config_never_imports_the_team_libraries(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.org", groups="Friends"))
    w.add_event("e1", event("e1", "20260610T100000", "Coffee", ["bob@example.org"]))
    for command in (["sync"], ["people", "--json"], ["status"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "syncd", "--config", str(w.config),
                               *command], capture_output=True, text=True, env=w.env("2026-06-15T10:00:00Z"),
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
        assert "syncd.engine" in imported or command != ["sync"]
        assert not {m for m in imported if m.split(".")[0] in TEAM_ONLY or m in TEAM_ONLY}, command

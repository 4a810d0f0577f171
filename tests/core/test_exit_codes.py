"""SPEC §2's exit codes of a pass, decided from typed failures in one place, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import World, event

CALDAV = """
[accounts.home]
type = "caldav"
url = "http://127.0.0.1:9/"
username = "alice"
"""


def _run(world: World, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "--config", str(world.config), *args],
                          capture_output=True, text=True, env={**world.env("2026-06-15T10:00:00Z"), **env},
                          timeout=120)


def _only_caldav(world: World) -> None:
    world.config.write_text(f'[syncd]\nledger = "{world.root / "l.sqlite3"}"\ntimezone = "UTC"\n' + CALDAV)


def test_no_keyring_backend_is_a_missing_component(tmp_path: Path) -> None:
    w = World(tmp_path)
    _only_caldav(w)
    proc = _run(w, "sync", PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    assert proc.returncode == 69, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if "keyring" in x)
    assert line.count("home") == 1 and "Traceback" not in proc.stderr


def test_an_unreachable_server_alone_is_worth_a_retry(tmp_path: Path) -> None:
    w = World(tmp_path)
    _only_caldav(w)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "home").write_text("s3cret-pw")
    proc = _run(w, "sync", CREDENTIALS_DIRECTORY=str(creds))
    assert proc.returncode == 75, proc.stderr
    assert "s3cret-pw" not in proc.stdout + proc.stderr
    errors = [x for x in proc.stderr.splitlines() if "ERROR" in x]
    assert errors and all(x.count("'home'") == 1 for x in errors)


def test_one_failing_account_beside_a_working_one_exits_1_and_saves_the_other(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.config.write_text(w.config.read_text() + CALDAV)
    w.add_event("e1", event("e1", "20260610T100000", "Coffee", ["ana@example.org"]))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "home").write_text("pw")
    proc = _run(w, "sync", CREDENTIALS_DIRECTORY=str(creds))
    assert proc.returncode == 1, proc.stderr
    assert "files: 1 changes, ok" in proc.stdout
    assert [p["emails"] for p in w.people().values()] == [["ana@example.org"]]

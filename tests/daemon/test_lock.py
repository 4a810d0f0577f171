"""syncd.lock: one writer per ledger, the refused one is told who holds it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncd import lock
from syncd.errors import EX_TEMPFAIL, LockedError


def test_second_acquire_is_refused_and_names_the_holder(xdg: dict[str, str], tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with lock.hold(ledger, "syncd run"):
        with pytest.raises(LockedError) as info:
            lock.acquire(ledger, "syncd sync")
        assert info.value.exit_code == EX_TEMPFAIL
        assert str(info.value) == f"ledger {ledger} is in use by syncd run (pid {os.getpid()})"
    with lock.hold(ledger, "syncd sync") as held:  # released: free again
        assert held.held


def test_lock_dir_is_private_and_named_by_ledger(xdg: dict[str, str], tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    with lock.hold(a) as la, lock.hold(b) as lb:  # two ledgers do not collide
        assert la.path != lb.path
        assert la.path.parent == Path(xdg["XDG_RUNTIME_DIR"]) / "syncd"
        assert la.path.parent.stat().st_mode & 0o777 == 0o700
        assert la.path.stat().st_mode & 0o777 == 0o600
        assert la.path.read_text().splitlines()[0] == str(os.getpid())


def test_same_ledger_by_another_spelling(xdg: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with lock.hold(tmp_path / "real" / "l.sqlite3"), pytest.raises(LockedError):
        lock.acquire(tmp_path / "link" / "l.sqlite3")


def test_runtime_directory_wins(xdg: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "systemd-run"
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(run))
    assert lock.lock_path(tmp_path / "x").parent == run


def test_holder_in_another_process_and_release_on_death(xdg: dict[str, str], tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    code = (
        "import sys, time; from pathlib import Path; from syncd import lock\n"
        f"l = lock.acquire(Path({str(ledger)!r}), 'syncd run')\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"in use by syncd run \(pid {proc.pid}\)"):
            lock.acquire(ledger)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while True:  # the kernel dropped the lock with the process: no stale pid file
        try:
            lock.acquire(ledger).release()
            break
        except LockedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)

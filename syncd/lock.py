"""One writer per ledger: an ``flock`` on a lock file in the 0700 runtime directory.

The lock file is named after a hash of the ledger's resolved path, so two ledgers
never share a lock and two spellings of one path (a symlink, ``~``) do. The kernel
drops the lock when its holder dies, so there is no stale pid file to clean up; the
pid and command written into the file only serve the message of the instance that is
refused (``LockedError``, exit 75): "ledger X is in use by syncd run (pid 1234)".

Public API: ``hold`` (context manager), ``acquire`` / ``Lock.release``, ``lock_path``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd import paths
from syncd.errors import LockedError


def lock_path(ledger_path: Path) -> Path:
    """The lock file of ``ledger_path`` (its directory is created 0700)."""
    resolved = Path(ledger_path).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return paths.private_dir(paths.runtime_dir()) / f"ledger-{digest}.lock"


def default_command() -> str:
    """How this process was started, for the holder line: ``syncd run``."""
    args = [a for a in sys.argv[1:] if a]
    return " ".join(["syncd", *args])


class Lock:
    """A held ledger lock; ``release`` (or process exit) frees it."""

    def __init__(self, ledger_path: Path, path: Path, fd: int) -> None:
        self.ledger_path = ledger_path
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """True until released."""
        return self._fd is not None

    def release(self) -> None:
        """Free the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """'syncd run (pid 1234)' from the lock file, retried briefly while it is empty."""
    for _ in range(20):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        lines = text.splitlines()
        if lines and lines[0].strip().isdigit():
            command = lines[1].strip() if len(lines) > 1 else ""
            return f"{command or 'syncd'} (pid {lines[0].strip()})"
        time.sleep(0.01)  # the holder has the lock but has not written yet
    return "another syncd process"


def acquire(ledger_path: Path, command: str | None = None) -> Lock:
    """Take the lock of ``ledger_path`` without waiting.

    Args:
        ledger_path: the ledger file (it need not exist yet).
        command: what the holder is doing, e.g. ``"syncd run"``; default from argv.

    Raises:
        LockedError: another process holds it; the message names its command and pid.
    """
    path = lock_path(ledger_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = _holder(fd)
        finally:
            os.close(fd)
        raise LockedError(f"ledger {ledger_path} is in use by {holder}") from None
    except BaseException:
        os.close(fd)
        raise
    command = " ".join((command or default_command()).split())  # one line
    line = f"{os.getpid()}\n{command}\n{ledger_path}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, line, 0)
    return Lock(Path(ledger_path), path, fd)


@contextmanager
def hold(ledger_path: Path, command: str | None = None) -> Iterator[Lock]:
    """``with hold(ledger):`` the body runs as the ledger's only writer.

    Raises:
        LockedError: another process holds the lock (exit 75).
    """
    held = acquire(ledger_path, command)
    try:
        yield held
    finally:
        held.release()

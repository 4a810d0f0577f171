"""SIGTERM for one-shot commands (``syncd sync``, ``--backfill``), as the daemon has it.

Kept apart from ``syncd.daemon`` so that a one-shot command does not load the daemon's
sockets and scheduler; the daemon uses the same ``Interrupted`` and ``STOP_GRACE``.

Public API: ``StopGuard``, ``Interrupted``, ``STOP_GRACE``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

#: seconds a running pass may take to finish after SIGTERM before it is interrupted
STOP_GRACE = 6.0


class Interrupted(BaseException):
    """SIGTERM's grace ran out while a pass was running (not an ``Exception``, so no
    ``except Exception`` in the engine swallows it); ``syncd.cli`` catches it for
    ``sync`` and ``--backfill``."""


class StopGuard:
    """SIGTERM for one-shot commands (``syncd sync``, ``--backfill``), as the daemon has it.

    The first SIGTERM asks to stop: ``check()``, called between steps, then raises
    ``Interrupted``; a step still running after ``grace`` seconds is interrupted (its
    SQLite transaction rolls back), and a second SIGTERM interrupts at once. So the
    command ends within 10 s, and what it committed is what a rerun starts from.
    """

    def __init__(self, grace: float = STOP_GRACE) -> None:
        self.grace = grace
        self.stop = False
        self._old: dict[int, Any] = {}

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        if self.stop:
            raise Interrupted
        self.stop = True
        signal.setitimer(signal.ITIMER_REAL, self.grace)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.stop:
            raise Interrupted

    def check(self) -> None:
        """Raise ``Interrupted`` if a stop was asked for (call it between steps)."""
        if self.stop:
            raise Interrupted

    def __enter__(self) -> StopGuard:
        if threading.current_thread() is threading.main_thread():  # only it may take signals
            self._old = {signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_term),
                         signal.SIGALRM: signal.signal(signal.SIGALRM, self._on_alarm)}
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

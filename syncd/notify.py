"""The systemd notify protocol (sd_notify(3)), in-tree: a datagram to ``$NOTIFY_SOCKET``.

Every function is a no-op when ``NOTIFY_SOCKET`` is unset (not started by systemd with
``Type=notify``), and a failed send is logged at debug level and otherwise ignored: a
daemon must not die because its supervisor went away. A socket path starting with
``@`` names a Linux abstract socket.

Public API: ``ready``, ``status``, ``stopping``, ``reloading``, ``watchdog``,
``watchdog_interval``, and ``send`` for anything else.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def send(*fields: str) -> bool:
    """Send ``fields`` (``KEY=value`` lines) to ``$NOTIFY_SOCKET``.

    Returns:
        True if a datagram was sent; False when the socket is unset or the send failed.
    """
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    payload = "\n".join(fields).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(payload, _address(target))
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", target, exc)
        return False
    return True


def ready() -> bool:
    """READY=1: startup (or a reload) is complete."""
    return send("READY=1")


def status(text: str) -> bool:
    """STATUS=: one line shown by ``systemctl status``."""
    return send("STATUS=" + " ".join(text.split()))


def stopping() -> bool:
    """STOPPING=1: shutdown has begun."""
    return send("STOPPING=1")


def reloading() -> bool:
    """RELOADING=1 with the monotonic timestamp systemd 253+ expects; READY=1 ends it."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return send("RELOADING=1", f"MONOTONIC_USEC={usec}")


def watchdog() -> bool:
    """WATCHDOG=1: the service is alive (send only after a liveness check)."""
    return send("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds (``$WATCHDOG_USEC``), or None if none is armed.

    None as well when ``$WATCHDOG_PID`` names another process (the variable was
    inherited, not meant for us), or when the value is not a positive integer.
    """
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None

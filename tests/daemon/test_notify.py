"""syncd.notify: the sd_notify datagram protocol."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from syncd import notify

from .conftest import NotifySocket


def test_noop_without_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready() is False
    assert notify.watchdog() is False


def test_messages_to_abstract_socket(notify_socket: NotifySocket) -> None:
    assert notify.ready()
    assert notify.status("two  accounts\nok")
    assert notify.watchdog()
    assert notify.reloading()
    assert notify.stopping()
    notify_socket.wait("STOPPING", "1", timeout=5)
    assert notify_socket.seen("READY", "1")
    assert notify_socket.seen("STATUS", "two accounts ok")  # one line
    assert notify_socket.seen("WATCHDOG", "1")
    reload = notify_socket.seen("RELOADING", "1")[0]
    assert int(reload["MONOTONIC_USEC"]) > 0


def test_path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify.ready()
        assert sock.recv(100) == b"READY=1"


def test_dead_socket_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify.ready() is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    assert notify.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # inherited, meant for someone else
    assert notify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert notify.watchdog_interval() is None

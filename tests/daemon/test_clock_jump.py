"""Issue 11 item 10: a daemon whose clock went back (last pass recorded in the future)."""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ME, World, event


def test_last_pass_in_the_future_waits_one_interval_not_hours(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_event("a", event("a@t", "20260110T100000", "Coffee", ["ana@example.org;CN=Ana Lima", ME]))
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    w.run("sync", now=future)  # the ledger now says: last success 5 h from now
    env = w.env(None)
    env["PYTHONUNBUFFERED"] = "1"
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(w.config), "run"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and "next pass" not in text:
            time.sleep(0.1)
            text = (tmp_path / "daemon.log").read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    when = re.search(r"account files: next pass (.*)", text)
    assert when, text
    # the default interval is 15m; before the fix this said "in 5h 14m"
    assert when.group(1).strip() in {"in 15m", "in 14m 59s"}, text

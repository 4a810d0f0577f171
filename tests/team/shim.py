"""``python -m tests.team.shim ARGS``: the real ``syncd`` command, with a slow vdir task sink
(``SYNCD_TEST_SLOW_PUT`` seconds per task written) and a log of every pass (member ledger,
start, end, pid) in ``SYNCD_TEST_PASS_LOG``. Lets the tests kill a worker mid-pass and
check that passes of a member never overlap; nothing else differs from a real worker."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from syncd import cli
from syncd.engine import Engine
from syncd_connectors import vdir

_put = vdir.VdirConnector.put_task
_pass = Engine.run_pass


def _slow_put(self: Any, task: Any) -> None:
    time.sleep(float(os.environ.get("SYNCD_TEST_SLOW_PUT", "0")))
    _put(self, task)


def _logged_pass(self: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.time()
    try:
        return _pass(self, *args, **kwargs)
    finally:
        with open(os.environ["SYNCD_TEST_PASS_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps([str(self.ledger.path), start, time.time(), os.getpid()]) + "\n")


vdir.VdirConnector.put_task = _slow_put  # type: ignore[method-assign]
Engine.run_pass = _logged_pass  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))

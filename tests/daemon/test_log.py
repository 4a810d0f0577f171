"""syncd.log: one line per event, journald-aware, redacted."""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile

import pytest

from syncd import log as logsetup


@pytest.fixture(autouse=True)
def _restore_loggers():
    yield
    for name in (*logsetup.ROOTS, ""):
        logger = logging.getLogger(name or None)
        for h in [h for h in logger.handlers if getattr(h, "_syncd_handler", False)]:
            logger.removeHandler(h)
    logging.getLogger("syncd").propagate = True
    logging.getLogger("syncd_connectors").propagate = True


def test_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    for verbosity, level in ((-1, logging.WARNING), (0, logging.INFO), (1, logging.DEBUG), (3, logging.DEBUG)):
        logsetup.setup(verbosity, io.StringIO())
        assert logging.getLogger("syncd").level == level
        assert logging.getLogger("syncd_connectors").level == level
        assert len([h for h in logging.getLogger("syncd").handlers if getattr(h, "_syncd_handler", False)]) == 1


def test_plain_format_has_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    logsetup.setup(0, out)
    logging.getLogger("syncd.test").info("account %s: synced", "home")
    line = out.getvalue()
    assert line.count("\n") == 1
    assert line.endswith("INFO syncd.test: account home: synced\n")
    assert line[:4].isdigit()


def test_journal_format(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryFile("w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logsetup.on_journal(stream)
        logsetup.setup(0, stream)
        logging.getLogger("syncd_connectors.vdir").warning("skipped %s", "a.ics")
        logging.getLogger("syncd.x").debug("hidden")
        stream.seek(0)
        assert stream.read() == "<4>syncd_connectors.vdir: skipped a.ics\n"


def test_journal_stream_of_another_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not logsetup.on_journal(sys.stderr)
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert not logsetup.on_journal(sys.stderr)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer ya29.a0AfH6SMBxyzxyzxyz", "ya29.a0AfH6SMBxyzxyzxyz"),
        ("login password=hunter2hunter2 failed", "hunter2hunter2"),
        ('{"refresh_token": "1//0gAbCdEfGhIjKlMnOpQrStUv", "x": 1}', "0gAbCdEfGhIjKlMnOpQrStUv"),
        ("client_secret=GOCSPX-abcdef123456", "GOCSPX-abcdef123456"),
        ("GET https://alice:s3cr3tpass@dav.example.org/cal/", "s3cr3tpass"),
        ("token ya29.c.something-long-enough", "something-long-enough"),
    ],
)
def test_redact(text: str, secret: str) -> None:
    assert secret not in logsetup.redact(text)
    assert "***" in logsetup.redact(text)


def test_redact_leaves_ordinary_text() -> None:
    text = "account home: synced 3 collections, https://dav.example.org/cal/ 412 etag mismatch"
    assert logsetup.redact(text) == text


def test_tracebacks_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    logsetup.setup(0, out)
    try:
        raise RuntimeError("password=topsecretvalue")
    except RuntimeError:
        logging.getLogger("syncd.t").exception("boom")
    assert "topsecretvalue" not in out.getvalue()
    assert "RuntimeError" in out.getvalue()

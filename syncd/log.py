"""Logging: stderr, one line per event, journald-aware, and never a secret.

``setup(verbosity)`` configures the ``syncd`` and ``syncd_connectors`` loggers (every module
logs through ``logging.getLogger(__name__)`` with %-style arguments). Under journald
(``$JOURNAL_STREAM`` names stderr's device and inode) lines carry a ``<N>`` syslog
priority prefix, which journald turns into the entry's priority, and no timestamp,
since the journal has its own; elsewhere they start with a local timestamp.

The formatter redacts what looks like a credential (``Authorization: Bearer ...``,
``password=...``, OAuth tokens and client secrets) from messages and tracebacks: a
safety net, not a licence to log secrets.

While a progress bar is on the terminal, ``through(console)`` sends the lines through
the bar's rich console, which prints them above the bar instead of garbling it.

Public API: ``setup``, ``through``, ``listed_elsewhere``, ``redact``, ``on_journal``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

ROOTS = ("syncd", "syncd_connectors")

# level -> syslog priority (sd-daemon(3) SD_DEBUG .. SD_CRIT)
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}

_SECRET_PATTERNS = [
    # Authorization headers and the like: keep the scheme, drop the credential
    re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # key=value / key: value / "key": "value" for secret-sounding keys
    re.compile(
        r"(?i)(\b(?:password|passwd|pwd|secret|client_secret|access_token|refresh_token|"
        r"id_token|api_key|apikey|token)\b[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}\]]+)"
    ),
    # credentials in URLs: https://user:pass@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^/\s@]+)(?=@)"),
    # Google OAuth tokens seen bare
    re.compile(r"()\bya29\.[A-Za-z0-9._-]{10,}"),
    re.compile(r"()\b1//[A-Za-z0-9._-]{20,}"),
]


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``."""
    first, *rest = _SECRET_PATTERNS
    text = first.sub(r"\1\2***", text)
    for pattern in rest:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


def on_journal(stream: TextIO | None = None) -> bool:
    """True if ``stream`` (default stderr) is connected to journald ($JOURNAL_STREAM)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class Formatter(logging.Formatter):
    """One line per event, redacted; a ``<N>`` priority prefix for journald."""

    def __init__(self, journal: bool) -> None:
        fmt = "%(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        if not self.journal:
            return text
        prefix = f"<{_PRIORITY.get(record.levelno, 2 if record.levelno > logging.ERROR else 6)}>"
        # a traceback is several lines; journald makes each its own entry: prefix each
        return "\n".join(prefix + line for line in text.splitlines())


_HANDLER_MARK = "_syncd_handler"


class Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that can be pointed at a rich console for a while."""

    console: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        console = self.console
        if console is None:
            super().emit(record)
            return
        try:
            console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


class Unlisted(logging.Filter):
    """Drops the records the command's own report lists (``extra={"listed": True}``),
    so each follow-up is shown once on the screen."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "listed", False)


@contextlib.contextmanager
def listed_elsewhere() -> Iterator[None]:
    """Inside the block, log lines marked ``listed`` are not printed (a report follows)."""
    handlers = {h for name in (*ROOTS, "") for h in logging.getLogger(name).handlers
                if isinstance(h, Handler)}
    flt = Unlisted()
    for h in handlers:
        h.addFilter(flt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(flt)


@contextlib.contextmanager
def through(console: Any) -> Iterator[None]:
    """Print syncd's log lines with ``console.print`` inside the block (a live progress bar)."""
    handlers = {h for name in (*ROOTS, "") for h in logging.getLogger(name).handlers
                if isinstance(h, Handler)}
    for h in handlers:
        h.console = console
    try:
        yield
    finally:
        for h in handlers:
            h.console = None


def level_for(verbosity: int) -> int:
    """-1 (``-q``): warnings; 0: info; 1 (``-v``) and more: debug (``-vv``: libraries too)."""
    if verbosity < 0:
        return logging.WARNING
    return logging.INFO if verbosity == 0 else logging.DEBUG


def setup(verbosity: int = 0, stream: TextIO | None = None) -> logging.Handler:
    """Send the ``syncd`` and ``syncd_connectors`` loggers to stderr at ``verbosity``.

    Idempotent: a second call replaces the handler it installed before.

    Returns:
        The handler (tests may inspect it).
    """
    stream = stream or sys.stderr
    handler = Handler(stream)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(Formatter(on_journal(stream)))
    level = level_for(verbosity)
    for name in ROOTS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    # other libraries (caldav, urllib3, googleapiclient): warnings, or all with -vv
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.captureWarnings(True)
    return handler

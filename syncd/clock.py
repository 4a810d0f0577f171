"""The current time (``SYNCD_NOW``, ISO-8601, fixes it, for tests and reproducible demos), and
the local date of an instant."""

from __future__ import annotations

import datetime as dt
import os


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    fixed = os.environ.get("SYNCD_NOW")
    if fixed:
        value = dt.datetime.fromisoformat(fixed.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)
    return dt.datetime.now(dt.timezone.utc)


def local_date(when: dt.datetime, zone: dt.tzinfo) -> dt.date:
    """The local date of an instant."""
    return when.astimezone(zone).date()

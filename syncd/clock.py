"""The current time. ``SYNCD_NOW`` (ISO-8601) fixes it, for tests and reproducible demos."""

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

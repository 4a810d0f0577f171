"""Where syncd keeps its files: systemd's directories win, then XDG (platformdirs)."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from pathlib import Path

import platformdirs

APP = "syncd"


def _systemd_dir(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value.split(":")[0]) if value else None


def config_dir() -> Path:
    """The directory of config.toml."""
    return _systemd_dir("CONFIGURATION_DIRECTORY") or Path(platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    """The directory of the ledger."""
    return _systemd_dir("STATE_DIRECTORY") or Path(platformdirs.user_state_dir(APP))


def runtime_dir() -> Path:
    """The directory of the lock file (0700)."""
    found = _systemd_dir("RUNTIME_DIRECTORY")
    if found:
        return found
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(platformdirs.user_runtime_dir(APP))
    # Without a session runtime dir, keep the lock beside the state: same owner, 0700.
    return state_dir() / "run"


def cache_dir() -> Path:
    """The directory of what syncd can always rebuild (the entry points found)."""
    return _systemd_dir("CACHE_DIRECTORY") or Path(platformdirs.user_cache_dir(APP))


def credentials_dir() -> Path | None:
    """$CREDENTIALS_DIRECTORY (systemd LoadCredential=), if set."""
    return _systemd_dir("CREDENTIALS_DIRECTORY")


def private_dir(path: Path) -> Path:
    """Make sure ``path`` is a directory; the ones created here (parents too) are 0700.

    A directory that already exists keeps its mode: it may be shared (``/tmp`` with its
    sticky bit) or set up by the admin, and is not syncd's to change (SPEC §6).
    """
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # created meanwhile by someone else: theirs
        # mkdir's mode passes through the umask; ours is exactly 0700.
        folder.chmod(0o700)
    return path


def system_zone() -> dt.tzinfo:
    """The system's time zone ($TZ, /etc/localtime), UTC when unknown."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.path.realpath("/etc/localtime")
            name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
        except OSError:
            name = ""
    try:
        return zoneinfo.ZoneInfo(name) if name else dt.timezone.utc
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.timezone.utc

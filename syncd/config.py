"""The configuration: one declarative schema that validates, defaults and documents.

``SCHEMA`` maps each section to its options; connectors declare their own account
options (``Connector.options``) with the same ``Option`` type, and ``load`` validates
an account's keys against its connector's table. Every error names the file, the key,
what was found and what was expected (``ConfigError``, exit 78). Unknown keys are
errors: a typo must not pass silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd import paths
from syncd.errors import MISSING, ConfigError, UnavailableError

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Invalid(ValueError):
    """A value does not fit; its message says what is expected."""


def duration(value: Any) -> dt.timedelta:
    """Parse ``<int>m|h|d|w``."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise Invalid("a duration like 15m, 2h, 30d or 1w")
    return dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("a string")
    return value


def _nonempty_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty string")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid("a whole number of at least 1")
    return value


def _natural_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid("a whole number of at least 0")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid("a list of non-empty strings")
    return list(value)


def _emails(value: Any) -> list[str]:
    items = _str_list(value)
    for item in items:
        if "@" not in item:
            raise Invalid("a list of email addresses")
    return [i.strip().lower().removeprefix("mailto:") for i in items]


def _zone(value: Any) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(_nonempty_str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid("an IANA time zone name such as Europe/Berlin") from exc


def _path(value: Any) -> Path:
    return Path(_nonempty_str(value)).expanduser()


def _path_list(value: Any) -> list[Path]:
    return [Path(v).expanduser() for v in _str_list(value)]


def _relative_to(base: Path, value: Any) -> Any:
    """Relative paths in a config are relative to the config file's folder."""
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
        return [_relative_to(base, v) for v in value]
    return value


def _cadences(value: Any) -> dict[str, dt.timedelta]:
    if not isinstance(value, dict):
        raise Invalid('a table of group = duration, e.g. { Friends = "30d" }')
    out = {}
    for group, cadence in value.items():
        try:
            out[group] = duration(cadence)
        except Invalid as exc:
            raise Invalid(f"{group} = {cadence!r}: {exc}") from None
    return out


def choice(*allowed: str) -> Callable[[Any], str]:
    """A string out of ``allowed``."""

    def check(value: Any) -> str:
        if value not in allowed:
            raise Invalid("one of " + ", ".join(repr(a) for a in allowed))
        return str(value)

    return check


def verify_value(value: Any) -> bool | str:
    """TLS verification: true, false or a CA bundle path."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value:
        return str(Path(value).expanduser())
    raise Invalid("true, false or the path of a CA bundle")


def http_url(value: Any) -> str:
    """An http(s) URL."""
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise Invalid("an http:// or https:// URL")
    return value


TYPES: dict[str, Callable[[Any], Any]] = {
    "str": _str,
    "nonempty_str": _nonempty_str,
    "bool": _bool,
    "positive_int": _positive_int,
    "natural_int": _natural_int,
    "duration": duration,
    "str_list": _str_list,
    "emails": _emails,
    "zone": _zone,
    "path": _path,
    "path_list": _path_list,
    "cadences": _cadences,
    "verify": verify_value,
    "url": http_url,
}


@dataclass(frozen=True)
class Option:
    """One config key: how to parse it, its default (``MISSING``: required), its help."""

    parse: Callable[[Any], Any] | str
    default: Any = None
    help: str = ""

    def convert(self, value: Any) -> Any:
        """Parse ``value``; raise ``Invalid`` if it does not fit."""
        fn = TYPES[self.parse] if isinstance(self.parse, str) else self.parse
        return fn(value)


SCHEMA: dict[str, dict[str, Option]] = {
    "syncd": {
        "me": Option("emails", [], "the user's own addresses (more are auto-detected)"),
        "timezone": Option("zone", None, "due dates are local dates here; default: system zone"),
        "interval": Option("duration", "15m", "daemon pass interval"),
        "horizon": Option("duration", "60d", "how far ahead future meetings are read"),
        "write_to": Option("nonempty_str", None, "the account that receives follow-ups"),
        "ledger": Option("path", None, "default: $STATE_DIRECTORY or the XDG state dir"),
    },
    "inference": {
        "max_attendees": Option("positive_int", 10, "meetings with more people do not count"),
        "count_all_day": Option("bool", False, "count all-day events"),
        "match_titles": Option("bool", True, '"Lunch with Bob Stone" counts for Bob Stone'),
        "track_unknown": Option("bool", True, "attendees in no address book are people too"),
    },
    "rules.first_meeting": {
        "enabled": Option("bool", True, "follow up after a first meeting"),
        "due_after": Option("duration", "1d", "the follow-up's due, after the meeting"),
        "lookback": Option("duration", "7d", "only meetings this recent"),
    },
    "rules.keep_in_touch": {
        "daily_limit": Option("natural_int", 3, "new catch-up tasks per day, at most"),
        "groups": Option("cadences", {}, "group name = cadence"),
    },
    "rules.birthday": {
        "enabled": Option("bool", True, "birthdays and anniversaries"),
        "days_before": Option("natural_int", 7, "write the task this many days ahead"),
    },
}

#: options every account has, whatever its connector
ACCOUNT_COMMON: dict[str, Option] = {
    "type": Option("nonempty_str", MISSING, "the connector: caldav, google, vdir, ..."),
}


@dataclass(frozen=True)
class Account:
    """One ``[accounts.NAME]`` table, validated against its connector's options."""

    name: str
    type: str
    options: dict[str, Any]


@dataclass(frozen=True)
class Config:
    """The whole validated config."""

    path: Path
    me: frozenset[str]
    timezone: dt.tzinfo
    interval: dt.timedelta
    horizon: dt.timedelta
    write_to: str | None
    ledger: Path
    accounts: tuple[Account, ...]
    max_attendees: int = 10
    count_all_day: bool = False
    match_titles: bool = True
    track_unknown: bool = True
    first_meeting: bool = True
    due_after: dt.timedelta = dt.timedelta(days=1)
    lookback: dt.timedelta = dt.timedelta(days=7)
    daily_limit: int = 3
    cadences: dict[str, dt.timedelta] = field(default_factory=dict)
    birthdays: bool = True
    days_before: int = 7
    fingerprint: str = ""  # of the file's bytes: a changed config re-runs inference

    def account(self, name: str) -> Account:
        """The account called ``name``."""
        for acc in self.accounts:
            if acc.name == name:
                return acc
        raise KeyError(name)


def default_path() -> Path:
    """Where the config is looked for (SPEC §2)."""
    if os.environ.get("SYNCD_CONFIG"):
        return Path(os.environ["SYNCD_CONFIG"]).expanduser()
    if os.environ.get("CONFIGURATION_DIRECTORY"):
        first = os.environ["CONFIGURATION_DIRECTORY"].split(":")[0]
        return Path(first) / "config.toml"
    return paths.config_dir() / "config.toml"


def _section(
    path: Path, name: str, table: Any, schema: Mapping[str, Option]
) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(path, f"[{name}]", table, "a table")
    for key in table:
        if key not in schema:
            raise ConfigError(
                path, f"{name}.{key}", table[key],
                "one of the known keys: " + ", ".join(sorted(schema)),
            )
    out = {}
    for key, opt in schema.items():
        if key not in table:
            if opt.default is MISSING:
                raise ConfigError(path, f"{name}.{key}", MISSING, "a value (the key is required)")
            value = opt.default
            out[key] = _relative_to(path.parent, opt.convert(value)) if value is not None else None
            continue
        try:
            out[key] = _relative_to(path.parent, opt.convert(table[key]))
        except Invalid as exc:
            raise ConfigError(path, f"{name}.{key}", table[key], str(exc)) from None
    return out


def _split_sections(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """Flatten [rules.X] into 'rules.X' and check the top-level tables."""
    flat: dict[str, Any] = {}
    for top, value in raw.items():
        if top == "rules":
            if not isinstance(value, dict):
                raise ConfigError(path, "[rules]", value, "a table of rule tables")
            for rule, table in value.items():
                if f"rules.{rule}" not in SCHEMA:
                    raise ConfigError(
                        path, f"rules.{rule}", table,
                        "one of the rules: first_meeting, keep_in_touch, birthday",
                    )
                flat[f"rules.{rule}"] = table
        elif top in SCHEMA or top == "accounts":
            flat[top] = value
        else:
            raise ConfigError(
                path, f"[{top}]", value,
                "one of the tables: syncd, accounts, inference, rules",
            )
    return flat


def load(path: Path | None = None, registry: Mapping[str, type] | None = None,
         data: bytes | None = None) -> Config:
    """Read and validate the config at ``path`` (default: ``default_path()``).

    Args:
        path: the TOML file.
        registry: connector type -> class; defaults to the installed entry points.
        data: the file's bytes, when they come from elsewhere (a team member's config
            is kept in the team database; relative paths still start at ``path``).

    Raises:
        ConfigError: the file is missing, not TOML, or a key is wrong.
        UnavailableError: an account names a connector type that is not installed.
    """
    from syncd import plugins

    path = (Path(path) if path else default_path()).expanduser().absolute()
    try:
        data = path.read_bytes() if data is None else data
        raw = tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "(file)", MISSING, "a config file; see config.example.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "(file)", type(exc).__name__, "a readable UTF-8 file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(file)", str(exc), "valid TOML") from None
    flat = _split_sections(path, raw)
    sec = {name: _section(path, name, flat.get(name, {}), schema) for name, schema in SCHEMA.items()}
    registry = registry if registry is not None else plugins.registry()
    accounts = _accounts(path, flat.get("accounts", {}), registry)
    s = sec["syncd"]
    names = [a.name for a in accounts]
    write_to = s["write_to"]
    if write_to is not None and write_to not in names:
        raise ConfigError(path, "syncd.write_to", write_to, "the name of an account: " + ", ".join(names))
    if write_to is not None and not getattr(registry[accounts[names.index(write_to)].type], "tasks", False):
        raise ConfigError(path, "syncd.write_to", write_to, "an account whose type can receive tasks")
    fm, kit, bd, inf = sec["rules.first_meeting"], sec["rules.keep_in_touch"], sec["rules.birthday"], sec["inference"]
    return Config(
        path=path,
        me=frozenset(s["me"]),
        timezone=s["timezone"] or paths.system_zone(),
        interval=s["interval"],
        horizon=s["horizon"],
        write_to=write_to,
        ledger=s["ledger"] or paths.state_dir() / "ledger.sqlite3",
        accounts=tuple(accounts),
        max_attendees=inf["max_attendees"],
        count_all_day=inf["count_all_day"],
        match_titles=inf["match_titles"],
        track_unknown=inf["track_unknown"],
        first_meeting=fm["enabled"],
        due_after=fm["due_after"],
        lookback=fm["lookback"],
        daily_limit=kit["daily_limit"],
        cadences=kit["groups"],
        birthdays=bd["enabled"],
        days_before=bd["days_before"],
        fingerprint=hashlib.sha256(data).hexdigest()[:16],
    )


def _accounts(path: Path, table: Any, registry: Mapping[str, type]) -> list[Account]:
    if not isinstance(table, dict):
        raise ConfigError(path, "[accounts]", table, "a table of account tables")
    out = []
    for name, acc in table.items():
        if not isinstance(acc, dict):
            raise ConfigError(path, f"accounts.{name}", acc, "a table")
        # The type picks the schema for the other keys, so it is checked on its own first.
        only_type = {"type": acc["type"]} if "type" in acc else {}
        kind = _section(path, f"accounts.{name}", only_type, ACCOUNT_COMMON)["type"]
        if kind not in registry:
            known = ", ".join(sorted(registry)) or "none installed"
            raise UnavailableError(
                f"{path}: accounts.{name}.type: found {kind!r}, expected an installed connector type ({known})"
            )
        schema = {**ACCOUNT_COMMON, **getattr(registry[kind], "options", {})}
        opts = _section(path, f"accounts.{name}", acc, schema)
        opts.pop("type")
        out.append(Account(name=name, type=kind, options=opts))
    return out

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
import reprlib
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd import paths
from syncd.errors import MISSING, ConfigError, UnavailableError

_DURATION = re.compile(r"^\s*(\d{1,12})\s*([mhdw])\s*$")
_MINUTES = {"m": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}
#: no duration in syncd is longer (the expansion window must stay within datetime's range)
MAX_DURATION = dt.timedelta(days=3650)
#: no count in syncd is larger (limits, attendees, days)
MAX_INT = 1_000_000
#: tighter bounds of single keys: (least, most)
BOUNDS: dict[str, tuple[Any, Any]] = {
    "syncd.interval": (dt.timedelta(minutes=1), dt.timedelta(days=7)),
    "rules.birthday.days_before": (0, 366),
}
#: what an account may be called: its name is a keyring user and a credentials file name
_ACCOUNT_NAME = re.compile(r"[^\x00-\x20\x7f-\x9f/\\.][^\x00-\x1f\x7f-\x9f/\\]*")
#: pseudo file systems: a ledger there cannot work
_PSEUDO = (Path("/proc"), Path("/sys"), Path("/dev"))


class Invalid(ValueError):
    """A value does not fit; its message says what is expected."""


def duration(value: Any) -> dt.timedelta:
    """Parse ``<int>m|h|d|w`` (at most ``MAX_DURATION``)."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise Invalid("a duration like 15m, 2h, 30d or 1w")
    minutes = int(m.group(1)) * _MINUTES[m.group(2)]
    if minutes > MAX_DURATION // dt.timedelta(minutes=1):
        raise Invalid(f"a duration of at most {MAX_DURATION.days}d")
    return dt.timedelta(minutes=minutes)


def _str(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise Invalid("a string")
    return value


def _nonempty_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise Invalid("a non-empty string")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
        raise Invalid(f"a whole number from 1 to {MAX_INT}")
    return value


def _natural_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise Invalid(f"a whole number from 0 to {MAX_INT}")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v and "\x00" not in v for v in value):
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
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise Invalid("an IANA time zone name such as Europe/Berlin") from exc


def expanded_path(text: str) -> Path:
    """A config path with ``$VAR``/``${VAR}`` and ``~`` expanded (as vdirsyncer users
    expect); an unset variable stays as written, for ``syncd check`` to name."""
    try:
        return Path(os.path.expandvars(text)).expanduser()
    except RuntimeError:  # ~someone who does not exist
        raise Invalid("a path (~ names a user that does not exist)") from None


_expanded = expanded_path


def _path(value: Any) -> Path:
    return _expanded(_nonempty_str(value))


def _path_list(value: Any) -> list[Path]:
    return [_expanded(v) for v in _str_list(value)]


def _relative_to(base: Path, value: Any) -> Any:
    """Relative paths in a config are relative to the config file's folder."""
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
        return [_relative_to(base, v) for v in value]
    return value


def _cadences(value: Any) -> dict[str, dt.timedelta]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Invalid('a table of group = duration, e.g. { Friends = "30d" }')
    out = {}
    for group, cadence in value.items():
        try:
            out[group] = duration(cadence)
        except Invalid as exc:
            raise Invalid(f"{group} = {cadence!r}: {exc}") from None
    return out


def _globs(value: Any) -> list[str]:
    """Address globs (``*@noreply.example.org``), matched case-insensitively."""
    try:
        return [g.strip().lower() for g in _str_list(value)]
    except Invalid:
        raise Invalid('a list of address globs, e.g. ["*@noreply.example.org"]') from None


def _factor(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
        raise Invalid("a number above 0 and at most 100, e.g. 2.0")
    return float(value)


def _days(value: Any) -> dt.timedelta:
    """A duration of at least one day (cadences are counted in days)."""
    d = duration(value)
    if d < dt.timedelta(days=1):
        raise Invalid("a duration of at least 1d, e.g. 14d")
    return d


def person_cadence(value: Any) -> dt.timedelta | None:
    """A ``[people."EMAIL"]`` cadence: a duration of at least a day, or ``"off"`` (None)."""
    if value == "off":
        return None
    try:
        return _days(value)
    except Invalid:
        raise Invalid('a duration of at least 1d like "21d", or "off"') from None


#: the keys of one ``[people."EMAIL"]`` table
PERSON_SCHEMA: dict[str, Option]  # filled in below, once Option exists


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
    if isinstance(value, str) and value and "\x00" not in value:
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
    "globs": _globs,
    "factor": _factor,
    "days": _days,
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
        "ignore": Option("globs", [], "addresses that are never people (shell globs, any case)"),
    },
    "rules.first_meeting": {
        "enabled": Option("bool", True, "follow up after a first meeting"),
        "due_after": Option("duration", "1d", "the follow-up's due, after the meeting"),
        "lookback": Option("duration", "7d", "only meetings this recent"),
        "max_others": Option("natural_int", 3, "not after a meeting with more other people than this"),
    },
    "rules.keep_in_touch": {
        "daily_limit": Option("natural_int", 3, "new catch-up tasks per day, at most"),
        "groups": Option("cadences", {}, "group name = cadence"),
        "weekly_limit": Option("natural_int", None, "and at most this many a week, Monday to Sunday"),
        "learn": Option("bool", True, "people in no group get a cadence learned from history"),
        "learn_factor": Option("factor", 2.0, "learned cadence = usual gap x this"),
        "learn_min": Option("days", "14d", "a learned cadence is at least this"),
        "learn_max": Option("days", "365d", "and at most this"),
    },
    "rules.birthday": {
        "enabled": Option("bool", True, "birthdays and anniversaries"),
        "days_before": Option("natural_int", 7, "write the task this many days ahead"),
        "milestones": Option("bool", True, "other labelled dates: work anniversaries and the like"),
    },
}

PERSON_SCHEMA = {
    "cadence": Option(person_cadence, MISSING, 'overrides groups and learning; "off": no catch-ups'),
}

def default(key: str) -> Any:
    """The parsed default of ``SECTION.KEY`` in ``SCHEMA``: the one place a default lives
    (``Config`` and the settings of inference and rules take theirs from here)."""
    section, _, name = key.rpartition(".")
    opt = SCHEMA[section][name]
    return None if opt.default is None else opt.convert(opt.default)


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
    max_attendees: int = default("inference.max_attendees")
    count_all_day: bool = default("inference.count_all_day")
    match_titles: bool = default("inference.match_titles")
    track_unknown: bool = default("inference.track_unknown")
    first_meeting: bool = default("rules.first_meeting.enabled")
    due_after: dt.timedelta = default("rules.first_meeting.due_after")
    lookback: dt.timedelta = default("rules.first_meeting.lookback")
    daily_limit: int = default("rules.keep_in_touch.daily_limit")
    cadences: dict[str, dt.timedelta] = field(default_factory=dict)
    birthdays: bool = default("rules.birthday.enabled")
    days_before: int = default("rules.birthday.days_before")
    ignore: tuple[str, ...] = ()
    max_others: int = default("rules.first_meeting.max_others")
    weekly_limit: int | None = default("rules.keep_in_touch.weekly_limit")
    learn: bool = default("rules.keep_in_touch.learn")
    learn_factor: float = default("rules.keep_in_touch.learn_factor")
    learn_min: dt.timedelta = default("rules.keep_in_touch.learn_min")
    learn_max: dt.timedelta = default("rules.keep_in_touch.learn_max")
    milestones: bool = default("rules.birthday.milestones")
    people: dict[str, dt.timedelta | None] = field(default_factory=dict)  # email -> cadence (None: off)
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


class _Brief:
    """A value as an error shows it: cut short, however long or deep it is."""

    _repr = reprlib.Repr()
    _repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict = 3, 60, 60, 6, 6

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return self._repr.repr(self.value)


def _brief(value: Any) -> Any:
    return value if value is MISSING else _Brief(value)


def _shown(value: Any) -> str:
    """A bound as a config would spell it: 7d, 1m, 366."""
    if not isinstance(value, dt.timedelta):
        return str(value)
    minutes = value // dt.timedelta(minutes=1)
    for unit in ("w", "d", "h"):
        if minutes % _MINUTES[unit] == 0:
            return f"{minutes // _MINUTES[unit]}{unit}"
    return f"{minutes}m"


def _bounded(key: str, value: Any) -> Any:
    least, most = BOUNDS.get(key, (None, None))
    if least is not None and value is not None and not least <= value <= most:
        raise Invalid(f"a value from {_shown(least)} to {_shown(most)}")
    return value


def _section(
    path: Path, name: str, table: Any, schema: Mapping[str, Option]
) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(path, f"[{name}]", _brief(table), "a table")
    for key in table:
        if key not in schema:
            raise ConfigError(
                path, f"{name}.{key}", _brief(table[key]),
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
            out[key] = _relative_to(path.parent, _bounded(f"{name}.{key}", opt.convert(table[key])))
        except (ValueError, TypeError, OverflowError) as exc:  # Invalid, or a plugin's parser failing
            raise ConfigError(path, f"{name}.{key}", _brief(table[key]), str(exc) or "a valid value") from None
    return out


def _split_sections(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """Flatten [rules.X] into 'rules.X' and check the top-level tables."""
    flat: dict[str, Any] = {}
    for top, value in raw.items():
        if top == "rules":
            if not isinstance(value, dict):
                raise ConfigError(path, "[rules]", _brief(value), "a table of rule tables")
            for rule, table in value.items():
                if f"rules.{rule}" not in SCHEMA:
                    raise ConfigError(
                        path, f"rules.{rule}", _brief(table),
                        "one of the rules: first_meeting, keep_in_touch, birthday",
                    )
                flat[f"rules.{rule}"] = table
        elif top in SCHEMA or top in ("accounts", "people"):
            flat[top] = value
        else:
            raise ConfigError(
                path, f"[{top}]", _brief(value),
                "one of the tables: syncd, accounts, inference, rules, people",
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
    except RecursionError:
        raise ConfigError(path, "(file)", "tables or arrays nested too deep", "a config file") from None
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
    people = _people(path, flat.get("people", {}))
    fm, kit, bd, inf = sec["rules.first_meeting"], sec["rules.keep_in_touch"], sec["rules.birthday"], sec["inference"]
    if kit["learn_min"] > kit["learn_max"]:
        found = flat.get("rules.keep_in_touch", {}).get("learn_min", SCHEMA["rules.keep_in_touch"]["learn_min"].default)
        raise ConfigError(path, "rules.keep_in_touch.learn_min", found, "a duration no longer than learn_max")
    if not accounts:
        raise ConfigError(path, "accounts", _brief(flat["accounts"]) if "accounts" in flat else MISSING,
                          "at least one [accounts.NAME] table; see config.example.toml")
    ledger = s["ledger"] or paths.state_dir() / "ledger.sqlite3"
    _check_ledger(path, ledger)
    return Config(
        path=path,
        me=frozenset(s["me"]),
        timezone=s["timezone"] or paths.system_zone(),
        interval=s["interval"],
        horizon=s["horizon"],
        write_to=write_to,
        ledger=ledger,
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
        ignore=tuple(inf["ignore"]),
        max_others=fm["max_others"],
        weekly_limit=kit["weekly_limit"],
        learn=kit["learn"],
        learn_factor=kit["learn_factor"],
        learn_min=kit["learn_min"],
        learn_max=kit["learn_max"],
        milestones=bd["milestones"],
        people=people,
        fingerprint=hashlib.sha256(data).hexdigest()[:16],
    )


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _people(path: Path, table: Any) -> dict[str, dt.timedelta | None]:
    """``[people."EMAIL"]`` tables: one person each, named by any of their addresses."""
    if not isinstance(table, dict):
        raise ConfigError(path, "[people]", table, 'tables like [people."ana@example.org"]')
    out: dict[str, dt.timedelta | None] = {}
    for email, entry in table.items():
        key = email.strip().lower().removeprefix("mailto:")
        if not _EMAIL.match(key):
            raise ConfigError(path, f"people.{email}", entry, 'an email address as the table name, e.g. [people."ana@example.org"]')
        if key in out:
            raise ConfigError(path, f"people.{email}", entry, "one table per address (this one is there twice)")
        out[key] = _section(path, f'people."{email}"', entry, PERSON_SCHEMA)["cadence"]
    return out


def _accounts(path: Path, table: Any, registry: Mapping[str, type]) -> list[Account]:
    if not isinstance(table, dict):
        raise ConfigError(path, "[accounts]", table, "a table of account tables")
    out = []
    for name, acc in table.items():
        if not _ACCOUNT_NAME.fullmatch(name):
            raise ConfigError(path, f"accounts.{name}", _brief(name),
                              "an account name without /, \\, control characters or a leading dot or blank")
        if not isinstance(acc, dict):
            raise ConfigError(path, f"accounts.{name}", _brief(acc), "a table")
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


def _check_ledger(path: Path, ledger: Path) -> None:
    """The ledger must be a file that syncd can create or open: checked before anything is.

    Raises:
        ConfigError: it is a directory, lies under a file or in /proc, /sys or /dev, or
            its folder cannot be written.
    """
    key = "syncd.ledger"
    real = Path(os.path.realpath(ledger))
    if any(real == p or p in real.parents for p in _PSEUDO):
        raise ConfigError(path, key, str(ledger), "a file path outside /proc, /sys and /dev")
    if real.exists():
        if not real.is_file():
            raise ConfigError(path, key, str(ledger), "a file (this is a directory or a device)")
        return
    for folder in real.parents:
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(path, key, str(ledger), f"a path under folders ({folder} is a file)")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ConfigError(path, key, str(ledger), f"a path syncd can create ({folder} is not writable)")
            return

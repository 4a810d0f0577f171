"""Config fuzz: every generated config loads, or is refused naming file and key; never a traceback.

Hypothesis builds configs over every key of ``config.SCHEMA`` and every account option
of the installed connectors (both read from the code, so new keys are fuzzed too), with
values of every TOML type: plausible ones (durations, paths, zones), hostile ones (huge
numbers, NUL, deep nesting, ``~nobody``) and random ones. Run in-process through
``config.load`` for speed, plus a handful through the ``syncd`` command.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import config, plugins
from syncd.errors import ConfigError, UnavailableError

REGISTRY = plugins.registry()

_words = st.sampled_from(["15m", "2h", "30d", "1w", "0m", "0d", "99999999d", "3650d", "3651d", "-1d", "1.5d",
                          "10000000000000000000000w", " 7d ", "d", "Europe/Berlin", "UTC", "Mars/Olympus",
                          "../../etc/passwd", "/proc/self/x", "/dev/null", "~nobody-here/x", "~/ledger",
                          "relative/ledger.sqlite3", "http://127.0.0.1:1/", "https://", "todo", "event",
                          "me@example.org", "mailto:X@Example.org", "not-an-address", "", " ", "\x00", "a\x00b",
                          "\u202e", "\x7f", "files", "vdir", "caldav", "google", "memory", "no-such-type"])
_ints = st.integers() | st.sampled_from([0, 1, -1, 7, 366, 367, 10**6, 10**6 + 1, 2**63 - 1, -(2**63), 10**18])
_floats = st.floats(allow_nan=True, allow_infinity=True)
_dates = st.dates() | st.datetimes() | st.times()
_scalars = _words | st.text(max_size=20) | _ints | _floats | st.booleans() | _dates


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_words | st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
) | st.integers(1, 400).map(_deep)


_durations = st.builds(lambda n, u: f"{n}{u}", st.integers(0, 6000), st.sampled_from("mhdw"))
_emails = st.lists(st.sampled_from(["me@example.org", "Me@Example.ORG", "mailto:x@example.com"]), max_size=3)
_paths = st.sampled_from(["ledger.sqlite3", "state/ledger.sqlite3", "~/x", "/tmp", "cal/*", "nowhere"])
#: values an option of each parse type would take in a real config
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "duration": _durations,
    "bool": st.booleans(),
    "positive_int": st.integers(0, 2 * 10**6),
    "natural_int": st.integers(-1, 2 * 10**6),
    "str": st.text(max_size=10),
    "nonempty_str": st.text(max_size=10),
    "str_list": st.lists(st.text(max_size=6), max_size=3),
    "emails": _emails,
    "zone": st.sampled_from(["Europe/Berlin", "UTC", "America/New_York", "Nowhere/City", "Europe"]),
    "path": _paths,
    "path_list": st.lists(_paths, max_size=3),
    "cadences": st.dictionaries(st.sampled_from(["Friends", "Family", "x y"]), _durations, max_size=3),
    "verify": st.booleans() | _paths,
    "url": st.sampled_from(["http://127.0.0.1:1/", "https://dav.example.org/x", "ftp://x"]),
}


def _value_for(option: config.Option) -> st.SearchStrategy[Any]:
    """Mostly what the option expects, sometimes anything at all."""
    kind = option.parse if isinstance(option.parse, str) else None
    plausible = PLAUSIBLE.get(kind or "", _words | st.floats(0, 100))
    return st.one_of(*[plausible] * 8, _values)


def _toml_str(text: str) -> str:
    # JSON strings are TOML basic strings, except that TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml(value: Any) -> str:
    """A TOML value (inline form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_str(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _table(name: str, body: dict[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{_toml_str(k)} = {_toml(v)}\n" for k, v in body.items())


@st.composite
def _body(draw: st.DrawFn, options: dict[str, config.Option]) -> dict[str, Any]:
    """A table: some of ``options``, each mostly with a plausible value; now and then a typo."""
    keys = draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=4)) if options else []
    body = {k: draw(_value_for(options[k])) for k in keys}
    if draw(st.integers(0, 29)) == 0:
        body["unknown_key"] = 1
    return body


_sections = st.fixed_dictionaries({}, optional={name: _body(opts) for name, opts in config.SCHEMA.items()})


@st.composite
def _account(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(REGISTRY)) | _words)
    options = getattr(REGISTRY.get(kind), "options", {})
    body = draw(_body(options))
    for key, opt in options.items():  # required options, mostly present
        if opt.default is config.MISSING and draw(st.integers(0, 9)):
            body[key] = draw(_value_for(opt))
    if draw(st.integers(0, 9)):
        body["type"] = kind
    return body


_names = st.sampled_from(["home", "work", "files", "a b", "Ünïcode"]) | _words | st.text(max_size=10)
_accounts = st.dictionaries(st.sampled_from(["home", "work", "files"]), _account(), min_size=1, max_size=3) | \
    st.dictionaries(_names | st.sampled_from(["a/../b", "..", ".x"]), _account(), max_size=3)


@st.composite
def configs(draw: st.DrawFn) -> str:
    """A whole config file's text."""
    parts = []
    for name, body in draw(_sections).items():
        parts.append(_table(name, body))
    accounts = draw(_accounts | st.none()) if draw(st.integers(0, 4)) == 0 else draw(_accounts)
    if accounts is not None:
        parts.append("[accounts]\n")
        for acc, body in accounts.items():
            parts.append(_table(f"accounts.{_toml_str(acc)}", body))
    return "\n".join(parts)


def _load(text: str, root: Path) -> tuple[str, str]:
    path = root / "config.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config.load(path, REGISTRY)
    except ConfigError as exc:
        message = str(exc)
        assert exc.key and message.startswith(f"{path}: {exc.key}: found "), message
        assert len(message) < 3000, message
        return "78", exc.key
    except UnavailableError as exc:
        assert ".type: found" in str(exc), exc  # an unknown connector type: exit 69
        return "69", "type"
    return "ok", ""


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(configs())
def test_every_config_loads_or_names_a_key(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _load(text, root)
        assert sorted(p.name for p in root.iterdir()) == ["config.toml"]  # creating nothing


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(config.SCHEMA)), st.data())
def test_every_schema_key_with_any_value(section: str, data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(config.SCHEMA[section])))
    value = data.draw(_values)
    text = _table(section, {key: value}) + '\n[accounts.files]\ntype = "memory"\n'
    with tempfile.TemporaryDirectory() as tmp:
        outcome, named = _load(text, Path(tmp))
    assert outcome == "ok" or named == f"{section}.{key}"


def test_a_handful_through_the_command(tmp_path: Path) -> None:
    cases = {
        '[syncd]\ninterval = "99999999d"\n[accounts.a]\ntype = "memory"\n': "syncd.interval",
        '[syncd]\nme = "me@example.org"\n[accounts.a]\ntype = "memory"\n': "syncd.me",
        '[inference]\nmax_attendees = 1e400\n[accounts.a]\ntype = "memory"\n': "inference.max_attendees",
        '[rules.keep_in_touch]\ngroups = { A = [1] }\n[accounts.a]\ntype = "memory"\n': "rules.keep_in_touch.groups",
        '[syncd]\ntimezone = "../../../etc/passwd"\n[accounts.a]\ntype = "memory"\n': "syncd.timezone",
        '[accounts.a]\ntype = "vdir"\ncalendars = ["~nobody-here-at-all/x"]\n': "accounts.a.calendars",
        f'[accounts.a]\ntype = "memory"\n[syncd]\nme = {_toml(_deep(300))}\n': "syncd.me",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XDG_", "NOTIFY_"))}
    env.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path / "run"),
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    for i, (text, key) in enumerate(cases.items()):
        path = tmp_path / f"c{i}.toml"
        path.write_text(text)
        proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(path), "sync"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 78, (text, proc.stderr)
        assert f"{path}: {key}: found " in proc.stderr and "Traceback" not in proc.stderr, proc.stderr

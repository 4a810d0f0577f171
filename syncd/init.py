"""``syncd init``: a first config from what is found on this machine.

Where the folders come from, in order:

1. a CalDAV/CardDAV URL given on the command line: the server is asked (discovery)
   and its calendars and address books are listed by display name and path;
2. else the configs of khal (``[calendars]``), khard (``[addressbooks]``) and
   vdirsyncer (``filesystem`` storages): their folders become one vdir account;
3. else ``~/.calendars/*`` and ``~/.contacts/*`` when they hold collections.

The user's own address is guessed as the most frequent ``ORGANIZER`` of the
calendars (the person who sends invitations from a calendar is mostly its owner).
The file is created exclusively: an existing config is never overwritten.

Public API: ``example``, ``write_first_config``, ``local_sources``.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from syncd.errors import SyncdError, UsageError

#: how many calendar files the organizer guess reads at most
_SAMPLE = 2000


def example() -> str:
    """The documented example config, as shipped inside the package."""
    return resources.files("syncd").joinpath("config.example.toml").read_text(encoding="utf-8")


@dataclass
class Found:
    """Folders found for one vdir account, and where each came from."""

    calendars: list[str] = field(default_factory=list)
    addressbooks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, path: str, source: str) -> None:
        """Add a folder (glob) unless it is already there."""
        items = self.calendars if key == "calendars" else self.addressbooks
        if path not in items:
            items.append(path)
            self.notes.append(f"{key}: {path} (from {source})")


# -- other tools' configs ------------------------------------------------------------
_SECTION = re.compile(r"^\s*(\[+)\s*([^\]]+?)\s*\]+\s*$")
_KEYVAL = re.compile(r"^\s*([A-Za-z_]+)\s*=\s*(.*?)\s*$")


def _sections(text: str) -> list[tuple[list[str], dict[str, str]]]:
    """configobj-style sections (``[a]``, ``[[b]]``) as (path of names, key = value)."""
    out: list[tuple[list[str], dict[str, str]]] = []
    trail: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith(("#", ";")):
            continue
        m = _SECTION.match(line)
        if m:
            depth = len(m.group(1))
            trail = [*trail[: depth - 1], m.group(2)]
            out.append((list(trail), {}))
            continue
        kv = _KEYVAL.match(line)
        if kv and out:
            out[-1][1][kv.group(1).lower()] = _unquote(kv.group(2))
    return out


def _unquote(value: str) -> str:
    value = value.split(" #", 1)[0].strip()
    if value.startswith('"'):
        with contextlib.suppress(json.JSONDecodeError):
            return str(json.loads(value))
    return value.strip("'\"")


def _xdg(tool: str, name: str) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / tool / name


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _from_khal(found: Found) -> None:
    path = _xdg("khal", "config")
    text = _read(path) or _read(Path.home() / ".khal" / "khal.conf")
    if text is None:
        return
    for trail, keys in _sections(text):
        if len(trail) == 2 and trail[0] == "calendars" and keys.get("path"):
            if keys.get("type", "calendar") == "birthdays":
                continue  # a khard folder seen through khal: added as an address book if khard has it
            found.add("calendars", keys["path"], f"khal calendar {trail[1]!r}")


def _from_khard(found: Found) -> None:
    text = _read(_xdg("khard", "khard.conf"))
    if text is None:
        return
    for trail, keys in _sections(text):
        if len(trail) == 2 and trail[0] == "addressbooks" and keys.get("path"):
            found.add("addressbooks", keys["path"], f"khard address book {trail[1]!r}")


def _from_vdirsyncer(found: Found) -> None:
    text = _read(Path(os.environ.get("VDIRSYNCER_CONFIG") or _xdg("vdirsyncer", "config")))
    if text is None:
        return
    for trail, keys in _sections(text):
        if len(trail) != 1 or not trail[0].startswith("storage ") or keys.get("type") != "filesystem":
            continue
        key = "addressbooks" if keys.get("fileext", "").lower() == ".vcf" else "calendars"
        if keys.get("fileext", "").lower() not in (".ics", ".vcf"):
            continue
        # vdirsyncer's path is the parent of the collections it syncs
        found.add(key, keys.get("path", "").rstrip("/") + "/*", f"vdirsyncer {trail[0]!r}")


def _from_home(found: Found) -> None:
    for key, folder in (("calendars", "~/.calendars"), ("addressbooks", "~/.contacts")):
        if any(Path(p).is_dir() for p in glob.glob(os.path.expanduser(folder + "/*"))):
            found.add(key, folder + "/*", "the usual place")


def local_sources() -> Found:
    """khal, khard and vdirsyncer configs, then ``~/.calendars/*`` and ``~/.contacts/*``."""
    found = Found()
    for finder in (_from_khal, _from_khard, _from_vdirsyncer):
        finder(found)
    if not found.calendars and not found.addressbooks:
        _from_home(found)
    return found


def _guess_me(calendars: list[str]) -> str | None:
    """The most frequent ORGANIZER address of the calendars, or None."""
    counts: collections.Counter[str] = collections.Counter()
    seen = 0
    for pattern in calendars:
        for folder in sorted(glob.glob(os.path.expandvars(os.path.expanduser(pattern)))):
            for ics in sorted(Path(folder).glob("*.ics")):
                if seen >= _SAMPLE:
                    break
                seen += 1
                text = _read(ics) or ""
                for m in re.finditer(r"^ORGANIZER[^:\r\n]*:(?:mailto:)?([^\s]+@[^\s]+)", text, re.M | re.I):
                    counts[m.group(1).strip().lower()] += 1
    return counts.most_common(1)[0][0] if counts else None


def _tasks_folder(calendars: list[str]) -> str:
    """Follow-ups go beside the calendars, so khal/todoman configs that glob them see it."""
    first = calendars[0] if calendars else "~/.calendars/*"
    parent = first[:-2] if first.endswith("/*") else str(Path(first).parent)
    return parent.rstrip("/") + "/followups"


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def vdir_config(found: Found) -> str:
    """A config with one vdir account ``files`` for ``found``."""
    me = _guess_me(found.calendars)
    lines = ["# Written by `syncd init`; every key is explained in docs/config.md.", ""]
    lines += [f"# {note}" for note in found.notes]
    lines += ["", "[syncd]"]
    if me:
        lines.append(f"me = [{_toml(me)}]  # guessed: the most frequent organizer in your calendars")
    else:
        lines.append('# me = ["you@example.org"]  # your own addresses; none could be guessed')
    lines += ['write_to = "files"', "", "[accounts.files]", 'type = "vdir"']
    lines.append("calendars = [" + ", ".join(map(_toml, found.calendars)) + "]")
    lines.append("addressbooks = [" + ", ".join(map(_toml, found.addressbooks)) + "]")
    lines.append(f"tasks = {_toml(_tasks_folder(found.calendars))}  # follow-ups, one VTODO file each (todoman)")
    return "\n".join(lines) + "\n"


def caldav_config(url: str, username: str | None, layout: dict[str, Any]) -> str:
    """A config with one CalDAV account ``home`` listing what the server offers."""
    cals = [c for c in layout.get("calendars", []) if "VEVENT" in c.get("components", [])]
    books = list(layout.get("addressbooks", []))
    lines = ["# Written by `syncd init`; every key is explained in docs/config.md."]
    if layout.get("stored"):
        lines.append("# The password is in the keyring (service syncd, user home).")
    elif username:
        lines.append("# Store the password with: syncd auth home")
    lines += ["", "[syncd]"]
    addresses = list(layout.get("addresses", []))
    if addresses:
        lines.append("me = [" + ", ".join(_toml(a) for a in addresses) + "]")
    lines += ['write_to = "home"', "", "[accounts.home]", 'type = "caldav"', f"url = {_toml(url)}"]
    if username:
        lines.append(f"username = {_toml(username)}")
    lines.append("# calendars found (display name, path); remove the ones that should not count:")
    lines.append("calendars = [")
    lines += [f"  {_toml(c['name'])},  # {c['href']}" for c in cals]
    lines.append("]")
    lines.append("# address books found (display name, path):")
    lines.append("addressbooks = [")
    lines += [f"  {_toml(b['name'])},  # {b['href']}" for b in books]
    lines.append("]")
    lines.append('tasks = "Follow-ups"  # the calendar follow-ups go into; created if missing')
    return "\n".join(lines) + "\n"


def _discover(url: str, username: str | None) -> dict[str, Any]:
    """Ask the server what it offers (the password is asked for when a username is given)."""
    from syncd import plugins, secrets
    from syncd.context import AccountContext

    password = secrets.read_password(f"Password for {username} at {url}: ") if username else None
    cls = plugins.connector_class("caldav")
    ctx = AccountContext("home", get_secret=lambda _account: password or "")
    conn = cls("home", {"url": url, "username": username}, ctx)
    try:
        layout = dict(conn.layout(refresh=True))
    finally:
        conn.close()
    layout["stored"] = False
    if password:
        # the server took it: keep it, so that `syncd check` works next (no second prompt)
        try:
            secrets.check_backend()
            secrets.put("home", password)
            layout["stored"] = True
        except SyncdError:
            pass  # no usable keyring here: the config says to run `syncd auth home`
    return layout


def write_first_config(path: Path, url: str | None = None, username: str | None = None) -> str:
    """Write a first config at ``path``; return its text.

    Raises:
        SyncdError: ``path`` exists (never overwritten), or nothing was found.
        UsageError: ``--username`` without a URL.
    """
    if username and not url:
        raise UsageError("--username goes with a CalDAV URL: syncd init URL --username NAME")
    if path.exists():
        raise SyncdError(f"{path} exists; syncd init never overwrites a config (edit it, or move it away)")
    if url:
        from syncd.config import Invalid, http_url

        try:
            http_url(url)
        except Invalid as exc:
            raise UsageError(f"URL: found {url!r}, expected {exc}") from None
        text = caldav_config(url, username, _discover(url, username))
    else:
        found = local_sources()
        if not found.calendars and not found.addressbooks:
            raise SyncdError(
                "found no calendars or address books: no khal, khard or vdirsyncer config, nothing in "
                "~/.calendars/* or ~/.contacts/*; give a CalDAV server instead: syncd init URL --username NAME"
            )
        text = vdir_config(found)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # an existing folder keeps its mode
    try:
        with open(path, "x", encoding="utf-8") as fh:  # "x": a config that appeared meanwhile is kept
            fh.write(text)
    except FileExistsError:
        raise SyncdError(f"{path} exists; syncd init never overwrites a config") from None
    except OSError as exc:
        raise SyncdError(f"cannot write {path}: {exc.strerror}") from None
    return text

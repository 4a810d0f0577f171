"""Issue 11 item 2: ``syncd init`` writes a first config from what it finds, never over one.

A fresh HOME holds khal, khard or vdirsyncer data; the new user runs ``syncd init``,
``syncd check`` and ``syncd --backfill`` and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import ME, event, vcard

NOW = "2026-06-15T10:00:00Z"


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".calendars" / "personal").mkdir(parents=True)
    (home / ".calendars" / "work").mkdir(parents=True)
    (home / ".contacts" / "friends").mkdir(parents=True)
    (home / ".calendars" / "personal" / "a.ics").write_text(
        event("a@t", "20260610T100000", "Coffee", ["bob@example.com", ME]), newline="")
    (home / ".calendars" / "work" / "b.ics").write_text(
        event("b@t", "20260611T100000", "Standup", ["bob@example.com", ME]), newline="")
    (home / ".contacts" / "friends" / "bob.vcf").write_text(
        vcard("Bob Stone", "bob@example.com", groups="Friends"), newline="")
    return home


def _syncd(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "NOTIFY_", "XDG_"))}
    env.update(HOME=str(home), TZ="UTC", SYNCD_NOW=NOW, XDG_RUNTIME_DIR=str(home / "run"),
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    (home / "run").mkdir(exist_ok=True, mode=0o700)
    return subprocess.run([sys.executable, "-m", "syncd", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=120)


def _first_hour(home: Path) -> dict:
    """init, check, backfill: each succeeds; the written config."""
    init = _syncd(home, "init")
    assert init.returncode == 0, init.stderr
    path = home / ".config" / "syncd" / "config.toml"
    cfg = tomllib.loads(path.read_text())
    check = _syncd(home, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    backfill = _syncd(home, "--backfill")
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    assert "Follow up with Bob Stone" in backfill.stdout
    return cfg


def test_init_from_khal_and_khard_configs(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / ".config" / "khal").mkdir(parents=True)
    (home / ".config" / "khal" / "config").write_text(
        "[calendars]\n\n  [[mine]]\n    path = ~/.calendars/*\n    type = discover\n\n"
        "  [[birthdays]]\n    path = ~/.contacts/friends\n    type = birthdays\n\n"
        "[locale]\ntimeformat = %H:%M\n")
    (home / ".config" / "khard").mkdir(parents=True)
    (home / ".config" / "khard" / "khard.conf").write_text(
        "[addressbooks]\n[[friends]]\npath = ~/.contacts/friends/\n\n[general]\ndebug = no\n")
    cfg = _first_hour(home)
    files = cfg["accounts"]["files"]
    assert files["type"] == "vdir"
    assert files["calendars"] == ["~/.calendars/*"]
    assert files["addressbooks"] == ["~/.contacts/friends/"]
    assert files["tasks"] == "~/.calendars/followups"
    assert cfg["syncd"]["me"] == [ME]  # the organizer of the meetings: guessed
    assert list((home / ".calendars" / "followups").glob("*.ics"))


def test_init_from_a_vdirsyncer_config(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / ".config" / "vdirsyncer").mkdir(parents=True)
    (home / ".config" / "vdirsyncer" / "config").write_text(
        '[general]\nstatus_path = "~/.vdirsyncer/status/"\n\n'
        '[storage cal_local]\ntype = "filesystem"\npath = "~/.calendars/"\nfileext = ".ics"\n\n'
        '[storage card_local]\ntype = "filesystem"\npath = "~/.contacts/"\nfileext = ".vcf"\n\n'
        '[storage cal_remote]\ntype = "caldav"\nurl = "https://dav.example.org/"\n')
    cfg = _first_hour(home)
    assert cfg["accounts"]["files"]["calendars"] == ["~/.calendars/*"]
    assert cfg["accounts"]["files"]["addressbooks"] == ["~/.contacts/*"]


def test_init_from_the_usual_folders(tmp_path: Path) -> None:
    cfg = _first_hour(_home(tmp_path))
    assert cfg["accounts"]["files"]["calendars"] == ["~/.calendars/*"]


def test_init_never_overwrites(tmp_path: Path) -> None:
    home = _home(tmp_path)
    path = home / ".config" / "syncd" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("# mine\n")
    proc = _syncd(home, "init")
    assert proc.returncode == 1 and "never overwrites" in proc.stderr and str(path) in proc.stderr
    assert path.read_text() == "# mine\n"


def test_init_finds_nothing_says_what_to_do(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    proc = _syncd(home, "init")
    assert proc.returncode == 1 and "syncd init URL" in proc.stderr and "Traceback" not in proc.stderr
    assert not (home / ".config" / "syncd" / "config.toml").exists()


def test_init_example_is_the_shipped_example_and_loads(tmp_path: Path) -> None:
    from syncd import config

    proc = _syncd(tmp_path, "init", "--example")
    assert proc.returncode == 0
    repo = Path(__file__).resolve().parents[2] / "config.example.toml"
    assert proc.stdout == repo.read_text()
    (tmp_path / "example.toml").write_text(proc.stdout)
    assert config.load(tmp_path / "example.toml").accounts

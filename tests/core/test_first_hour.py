"""Issue 11, "the first hour with syncd": each item through the ``syncd`` command.

Setup that cannot go silently wrong (check, the empty-collection rule, auth), output
fit for terminals (a pty), pipes and cron, what every CLI has, docs and packaging.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ME, World, event, vcard

NOW = "2026-06-15T10:00:00Z"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _meet(w: World, n: int, when: str = "20260610T100000", who: str = "bob@example.com") -> None:
    w.add_event(f"e{n}", event(f"e{n}@t", when, f"Coffee {n}", [who, ME]))


def run_in_pty(args: list[str], env: dict[str, str], cols: int = 100, timeout: float = 120) -> tuple[int, str]:
    """``args`` with a pseudo-terminal as stdin, stdout and stderr; exit code and all output."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    env = {**env, "COLUMNS": str(cols), "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, out.decode(errors="replace")


def syncd_args(w: World, *args: str) -> list[str]:
    return [sys.executable, "-m", "syncd", "--config", str(w.config), *args]


# -- 1. syncd check catches what makes syncd useless ------------------------------------------


def _config(w: World, body: str) -> None:
    w.config.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "Europe/Berlin"
write_to = "files"
ledger = "{w.root / 'state' / 'ledger.sqlite3'}"

[accounts.files]
type = "vdir"
{body}
""")


def test_check_names_each_useless_setup(world: World) -> None:
    w = world
    (w.root / "empty-cal").mkdir()
    _meet(w, 1)  # calendars/personal holds an event: calendars/ is a parent of collections
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com"))
    locked = w.root / "locked"
    locked.mkdir(mode=0o500)
    _config(w, f"""
calendars = ["{w.root}/nothing-here/*", "{w.root}/empty-cal", "{w.root}/calendars", "$SYNCD_TEST_UNSET/cals/*"]
addressbooks = ["{w.book}"]
tasks = "{locked}/followups"
""")
    proc = w.run("check", check=False)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "Traceback" not in out + proc.stderr
    assert f"problem: calendars: {w.root}/nothing-here/* matches no folder" in out
    assert f"problem: calendars: {w.root}/empty-cal holds no .ics files" in out
    assert (f"problem: calendars: {w.root}/calendars holds no .ics files but its subfolders do (personal)"
            f': did you mean "{w.root}/calendars/*"?') in out
    assert "the environment variable $SYNCD_TEST_UNSET is not set" in out
    if os.geteuid() != 0:  # root writes anywhere
        assert f"problem: tasks: cannot create {locked}/followups" in out


def test_check_probes_the_tasks_folder_by_writing(world: World, tmp_path: Path) -> None:
    w = world
    _meet(w, 1)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _config(w, f"""
calendars = ["{w.root}/calendars/*"]
addressbooks = ["{w.book}"]
tasks = "{blocker}"
""")
    proc = w.run("check", check=False)
    assert proc.returncode == 1 and f"problem: tasks: {blocker} is not a folder" in proc.stdout


def test_paths_expand_environment_variables(world: World) -> None:
    w = world
    _meet(w, 1)
    w.add_event("w", event("w@t", "20260611T100000", "Work", ["bob@example.com", ME]), second=True)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    _config(w, """
calendars = ["$SYNCD_TEST_DATA/calendars/*"]
addressbooks = ["${SYNCD_TEST_DATA}/contacts/default"]
tasks = "$SYNCD_TEST_DATA/tasks"
""")
    env = w.env(NOW)
    env["SYNCD_TEST_DATA"] = str(w.root)
    argv = [sys.executable, "-m", "syncd", "--config", str(w.config)]
    check = subprocess.run([*argv, "check"], capture_output=True, text=True, env=env, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "files (vdir): ok" in check.stdout and "problem" not in check.stdout
    sync = subprocess.run([*argv, "--backfill"], capture_output=True, text=True, env=env, timeout=120)
    assert sync.returncode == 0, sync.stderr
    assert "Follow up with Bob Stone" in sync.stdout
    assert list((w.root / "tasks").glob("*.ics"))


def test_a_collection_that_empties_is_not_believed(world: World) -> None:
    w = world
    for n in range(3):
        _meet(w, n, f"2026061{n}T100000")
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    w.run("--backfill")
    assert w.people()["Bob Stone"]["interactions"] == 3
    for f in w.cal.glob("*.ics"):  # the folder is there but empty: an unmounted disk, say
        f.unlink()
    proc = w.run("sync", check=False)
    assert proc.returncode in (1, 75)
    msg = proc.stdout + proc.stderr
    assert "'personal' held 3 objects and now lists none" in msg
    assert "syncd sync --allow-empty files" in msg and "Traceback" not in msg
    assert w.people()["Bob Stone"]["interactions"] == 3  # nothing deleted
    assert "--allow-empty files" in (json.loads(w.run("status", "--json").stdout)["accounts"][0]["last_error"])
    # once accepted, the emptiness is believed; the next plain pass is fine again
    w.run("sync", "--allow-empty", "files")
    assert w.people()["Bob Stone"]["interactions"] == 0
    w.run("sync")


def test_a_glob_that_matches_nothing_keeps_history(world: World) -> None:
    w = world
    _meet(w, 1)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    w.run("--backfill")
    shutil.rmtree(w.root / "calendars")  # calendars/* now matches nothing
    proc = w.run("sync", check=False)
    assert proc.returncode != 0 and "matches no folder" in proc.stdout + proc.stderr
    assert w.people()["Bob Stone"]["interactions"] == 1


def test_allow_empty_names_a_known_account(world: World) -> None:
    proc = world.run("sync", "--allow-empty", "nope", check=False)
    assert proc.returncode == 78 and "nope" in proc.stderr and "files" in proc.stderr


# -- 3. auth ---------------------------------------------------------------------------------


def test_auth_refuses_an_account_without_a_secret(world: World) -> None:
    proc = world.run("auth", "files", check=False)
    assert proc.returncode == 2
    assert "account 'files' (vdir) needs no secret" in proc.stderr and "Traceback" not in proc.stderr


def _caldav_world(w: World) -> None:
    w.config.write_text(w.config.read_text() + """
[accounts.dav]
type = "caldav"
url = "http://127.0.0.1:9/"
username = "alice"
""")


def test_auth_checks_the_keyring_before_it_prompts(world: World) -> None:
    _caldav_world(world)
    # the helpers' environment uses the null backend: it would lose the password
    rc, text = run_in_pty(syncd_args(world, "auth", "dav"), world.env(NOW))
    assert rc == 69, text
    assert "no keyring backend can store the secret" in text
    assert "Password" not in text and "Traceback" not in text


def test_auth_reads_a_password_from_a_pipe_without_a_traceback(world: World) -> None:
    _caldav_world(world)
    env = world.env(NOW)
    env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    env["XDG_DATA_HOME"] = str(world.root / "data")
    argv = syncd_args(world, "auth", "dav")
    empty = subprocess.run(argv, input="", capture_output=True, text=True, env=env, timeout=60)
    assert empty.returncode == 2 and "no password given" in empty.stderr
    assert "Traceback" not in empty.stderr + empty.stdout
    # a password on stdin is read, then checked against the server (down here): not stored
    down = subprocess.run(argv, input="secret\n", capture_output=True, text=True, env=env, timeout=60)
    assert down.returncode != 0 and "Traceback" not in down.stderr + down.stdout
    assert "stored" not in down.stdout
    assert not list((world.root / "data").rglob("*.cfg")) or "secret" not in "".join(
        p.read_text() for p in (world.root / "data").rglob("*.cfg"))


# -- 4. the first screen ----------------------------------------------------------------------


def _busy_world(w: World, n: int = 60) -> None:
    for i in range(n):
        _meet(w, i, f"202606{1 + i % 14:02d}T{8 + i % 9:02d}0000", who=f"p{i}@example.com")
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    w.cal.joinpath("broken.ics").write_text("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:nonsense\r\n"
                                            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def test_progress_bar_has_a_total_and_log_lines_do_not_garble_it(world: World) -> None:
    w = world
    _busy_world(w)
    rc, text = run_in_pty(syncd_args(w, "--backfill"), w.env(NOW))
    assert rc == 0, text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert re.search(r"files: personal\W+\d+/61 objects", plain), plain  # a bar with its total
    # the warning for the broken file is a whole line of its own, not glued to the bar
    [warning] = [line for line in re.split(r"[\r\n]+", text) if "broken.ics" in line]
    assert re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", warning).lstrip().startswith("20"), repr(warning)
    assert "objects" not in warning
    # each follow-up is listed once on the screen
    written = re.findall(r"^  \+ (.*?) \(due", text, re.M)
    assert len(written) > 3
    for summary in written:
        assert text.count(summary + " ") == 1, summary


def test_dry_run_says_would_in_the_report_and_in_logs(world: World) -> None:
    w = world
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    proc = w.run("-v", "--backfill", "--dry-run")
    assert "Follow-ups syncd would write: 1" in proc.stdout
    assert "would write follow-up 'Catch up with Bob Stone'" in proc.stderr
    assert "wrote follow-up" not in proc.stderr
    assert not w.task_files()


def test_no_color_keeps_working(world: World) -> None:
    w = world
    _meet(w, 1)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    w.run("--backfill")
    env = {**w.env(NOW), "NO_COLOR": "1"}
    rc, text = run_in_pty(syncd_args(w, "people"), env)
    assert rc == 0 and "Bob Stone" in text
    colours = re.findall(r"\x1b\[([0-9;]*)m", text)
    assert not [c for c in colours if re.search(r"(^|;)(3[0-9]|4[0-9]|9[0-7]|10[0-7])(;|$)", c)], colours


# -- 5. pipes and cron ------------------------------------------------------------------------

LONG = "someone.with.a.really.long.address.that.would.not.fit@subdomain.example.com"


def test_tables_in_a_pipe_are_tab_separated_and_never_cut(world: World) -> None:
    w = world
    _meet(w, 1, who=LONG)
    w.add_contact("long", vcard("Long Address Person", LONG, groups="Friends"))
    w.run("--backfill")
    out = w.run("people").stdout
    header, *rows = out.splitlines()
    assert header.split("\t") == ["name", "emails", "groups", "met", "last met", "next", "due", "strength"]
    assert rows and rows[0].split("\t")[1] == LONG
    tasks = w.run("tasks").stdout.splitlines()
    assert tasks[0].split("\t") == ["due", "state", "rule", "person", "reason"]
    assert "…" not in out + "\n".join(tasks)


def test_tables_on_a_terminal_wrap_rather_than_cut(world: World) -> None:
    w = world
    _meet(w, 1, who=LONG)
    w.add_contact("long", vcard("Long Address Person", LONG, groups="Friends"))
    w.run("--backfill")
    rc, text = run_in_pty(syncd_args(w, "people"), w.env(NOW), cols=80)
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "").splitlines()
    assert rc == 0 and "…" not in text
    header = next(line for line in lines if "emails" in line)
    start, end = header.index("emails"), header.index("groups")
    column = "".join(line[start:end].strip() for line in lines[lines.index(header) + 1:])
    assert column == LONG  # wrapped inside its cell, every character there


def test_quiet_prints_nothing_on_success(world: World) -> None:
    w = world
    _meet(w, 1)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    _meet(w, 2)
    w.add_event("w", event("w@t", "20260611T100000", "Work", ["bob@example.com", ME]), second=True)
    for args in (("-q", "--backfill"), ("-q", "sync"), ("-q", "check")):
        proc = w.run(*args)
        assert proc.stdout == "" and proc.stderr == "", args


def test_overdue_is_sorted_by_due(world: World) -> None:
    w = world
    w.add_contact("a", vcard("Aaron Early", "aaron@example.com", groups="Friends"))
    w.add_contact("z", vcard("Zed Late", "zed@example.com", groups="Friends"))
    w.add_contact("m", vcard("Mia Middle", "mia@example.com", groups="Friends"))
    _meet(w, 1, "20260401T100000", "zed@example.com")  # due 1 May: the most overdue
    _meet(w, 2, "20260501T100000", "mia@example.com")  # due 31 May
    w.run("--backfill")
    rows = w.run("people", "--overdue").stdout.splitlines()[1:]
    assert [r.split("\t")[0] for r in rows] == ["Zed Late", "Mia Middle", "Aaron Early"]
    dues = [p["due"] for p in json.loads(w.run("people", "--overdue", "--json").stdout)]
    assert dues == sorted(dues)


def test_dates_in_tables_are_local_dates(world: World) -> None:
    w = world
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    # 00:30 in Berlin on 10 June is 22:30 UTC on 9 June
    _meet(w, 1, "20260610T003000")
    w.run("--backfill")
    [row] = w.run("people").stdout.splitlines()[1:]
    assert row.split("\t")[4] == "2026-06-10"
    assert w.people()["Bob Stone"]["last_met"] == "2026-06-09T22:30:00Z"  # JSON stays UTC


# -- 6. what every CLI has --------------------------------------------------------------------


def test_version(world: World) -> None:
    from syncd import __version__

    proc = subprocess.run([sys.executable, "-m", "syncd", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"syncd {__version__}"


def test_every_option_has_help() -> None:
    import argparse

    from syncd.cli import parser

    def walk(p: argparse.ArgumentParser, where: str) -> list[str]:
        missing = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{where} {name}")
                    missing += walk(sub, f"{where} {name}")
            elif not action.help:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(parser(), "syncd") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(world: World, shell: str) -> None:
    proc = world.run("completion", shell)
    assert "syncd" in proc.stdout and len(proc.stdout) > 200
    if shell == "bash" and shutil.which("bash"):
        syntax = subprocess.run(["bash", "-n"], input=proc.stdout, capture_output=True, text=True, timeout=30)
        assert syntax.returncode == 0, syntax.stderr
    if shell == "fish" and shutil.which("fish"):
        syntax = subprocess.run(["fish", "--no-execute"], input=proc.stdout, capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr


def test_completion_answers_from_the_parser(world: World, tmp_path: Path) -> None:
    answer = tmp_path / "answer"
    env = {**world.env(NOW), "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash", "COMP_LINE": "syncd peo",
           "COMP_POINT": "9", "_ARGCOMPLETE_STDOUT_FILENAME": str(answer), "_ARGCOMPLETE_IFS": "\n"}
    subprocess.run([sys.executable, "-m", "syncd"], env=env, capture_output=True, timeout=60)
    assert answer.read_text().split() == ["people"]
    env.update(COMP_LINE="syncd people --o", COMP_POINT="16")
    subprocess.run([sys.executable, "-m", "syncd"], env=env, capture_output=True, timeout=60)
    assert answer.read_text().split() == ["--overdue"]

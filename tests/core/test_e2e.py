"""Every rule and lifecycle state of SPEC §5, through the ``syncd`` command on real folders."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import icalendar
import pytest

from tests.helpers import ME, World, event, vcard

NOW = "2026-06-15T10:00:00Z"  # 12:00 in Berlin


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _todo(text: str) -> icalendar.cal.Component:
    return next(c for c in icalendar.Calendar.from_ical(text).walk() if c.name in ("VTODO", "VEVENT"))


def _by_summary(w: World) -> dict[str, icalendar.cal.Component]:
    return {str(_todo(t)["summary"]): _todo(t) for t in w.task_files().values()}


def test_first_meeting_written_once_due_after_the_meeting(world: World) -> None:
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com", groups="Friends"))
    world.add_event("m1", event("m1", "20260613T140000", "Coffee at Lisboa", ["ana@example.com"]))
    out = world.run("--backfill", now=NOW)
    assert "Follow up with Ana Lima" in out.stdout
    tasks = [t for t in world.tasks_json() if t["rule"] == "first_meeting"]
    assert len(tasks) == 1
    t = tasks[0]
    assert (t["person"], t["due"], t["state"], t["emails"]) == ("Ana Lima", "2026-06-14", "open", ["ana@example.com"])
    assert t["reason"] == "first met 13 Jun 2026 (Coffee at Lisboa)"
    todo = _todo(world.task_files()[f"{t['uid']}.ics"])
    assert str(todo["description"]) == t["reason"]
    assert todo["x-syncd-rule"] == "first_meeting" and todo.get("x-syncd-key")
    assert todo.decoded("due").isoformat() == "2026-06-14"
    # a later meeting neither resolves it nor adds a second one
    world.add_event("m2", event("m2", "20260615T090000", "Lunch", ["ana@example.com"]))
    world.run("sync", now="2026-06-15T12:00:00Z")
    tasks = [t for t in world.tasks_json() if t["rule"] == "first_meeting"]
    assert [t["state"] for t in tasks] == ["open"]


def test_no_first_meeting_for_history_outside_lookback(world: World) -> None:
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com"))
    world.add_event("m1", event("m1", "20260601T140000", "Coffee", ["ana@example.com"]))
    world.run("--backfill", now=NOW)
    assert world.tasks_json() == []


def test_unknown_attendee_is_a_person_named_by_cn_and_gets_a_first_meeting(world: World) -> None:
    world.add_event("m1", event("m1", "20260614T100000", "Intro", ["priya@startup.example;CN=Priya Nair"]))
    world.run("--backfill", now=NOW)
    people = world.people()
    assert people["Priya Nair"]["in_address_book"] is False
    assert people["Priya Nair"]["interactions"] == 1
    assert people["Priya Nair"]["due"] is None  # keep_in_touch needs an address-book record
    assert [t["person"] for t in world.tasks_json()] == ["Priya Nair"]


def test_keep_in_touch_due_and_catch_up_task(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends,Network"))
    world.add_event("m1", event("m1", "20260401T120000", "Lunch at Mesa", ["bob@example.com"]))
    world.run("--backfill", now=NOW)
    bob = world.people()["Bob Stone"]
    assert bob["cadence_days"] == 30 and bob["due"] == "2026-05-01"
    assert bob["last_met"] == "2026-04-01T10:00:00Z" and bob["first_met"] == bob["last_met"]
    [task] = world.tasks_json()
    assert task["rule"] == "keep_in_touch" and task["due"] == "2026-06-15"
    assert task["reason"] == "last met 1 Apr 2026 (Lunch at Mesa); Friends every 30 days"
    assert "Catch up with Bob Stone" in _by_summary(world)
    overdue = json.loads(world.run("people", "--json", "--overdue", now=NOW).stdout)
    assert [p["name"] for p in overdue] == ["Bob Stone"]


def test_never_met_is_due_today(world: World) -> None:
    world.add_contact("eve", vcard("Eve Adams", "eve@example.com", groups="Family"))
    world.run("--backfill", now=NOW)
    assert world.people()["Eve Adams"]["due"] == "2026-06-15"
    assert [t["person"] for t in world.tasks_json()] == ["Eve Adams"]


def test_scheduled_meeting_suppresses_catch_up(world: World) -> None:
    world.add_contact("carla", vcard("Carla Diaz", "carla@example.com", groups="Friends"))
    world.add_event("past", event("past", "20260301T120000", "Dinner", ["carla@example.com"]))
    world.add_event("soon", event("soon", "20260620T190000", "Dinner again", ["carla@example.com"]))
    world.run("--backfill", now=NOW)
    carla = world.people()["Carla Diaz"]
    assert carla["next_meeting"] == "2026-06-20T17:00:00Z"
    assert carla["due"] == "2026-03-31"
    assert world.tasks_json() == []


def test_daily_limit_earliest_due_first_rest_wait(world: World) -> None:
    world.write_config(daily_limit=2)
    for i, (name, month) in enumerate([("Dee Four", "04"), ("Ann One", "01"), ("Cid Three", "03"), ("Ben Two", "02")]):
        world.add_contact(f"c{i}", vcard(name, f"p{i}@example.com", groups="Friends"))
        world.add_event(f"m{i}", event(f"m{i}", f"2026{month}10T120000", "Coffee", [f"p{i}@example.com"]))
    world.run("--backfill", now=NOW)
    assert sorted(t["person"] for t in world.tasks_json()) == ["Ann One", "Ben Two"]
    world.run("sync", now="2026-06-15T18:00:00Z")
    assert len(world.tasks_json()) == 2  # same local day: the limit holds
    world.run("sync", now="2026-06-16T08:00:00Z")
    assert sorted(t["person"] for t in world.tasks_json()) == ["Ann One", "Ben Two", "Cid Three", "Dee Four"]


def test_resolved_when_met_and_user_edits_kept(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.add_event("m1", event("m1", "20260401T120000", "Lunch", ["bob@example.com"]))
    world.run("--backfill", now=NOW)
    [task] = world.tasks_json()
    path = world.tasks / f"{task['uid']}.ics"
    # the user edits the task: new text and a new due date
    text = path.read_text().replace("SUMMARY:Catch up with Bob Stone", "SUMMARY:Catch up with Bob Stone - call him")
    text = text.replace("DUE;VALUE=DATE:20260615", "DUE;VALUE=DATE:20260619")
    path.write_text(text, newline="")
    world.add_event("m2", event("m2", "20260616T120000", "Lunch again", ["bob@example.com"]))
    world.run("sync", now="2026-06-17T10:00:00Z")
    [task] = world.tasks_json(now="2026-06-17T10:00:00Z")
    assert task["state"] == "resolved"
    todo = _todo(path.read_text())
    assert str(todo["status"]) == "CANCELLED"
    assert str(todo["summary"]) == "Catch up with Bob Stone - call him"
    assert todo.decoded("due").isoformat() == "2026-06-19"
    assert "SEQUENCE" not in path.read_text()
    assert world.people(now="2026-06-17T10:00:00Z")["Bob Stone"]["due"] == "2026-07-16"


def test_done_counts_as_contact(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.add_event("m1", event("m1", "20260401T120000", "Lunch", ["bob@example.com"]))
    world.run("--backfill", now=NOW)
    [task] = world.tasks_json()
    path = world.tasks / f"{task['uid']}.ics"
    path.write_text(path.read_text().replace("STATUS:NEEDS-ACTION", "STATUS:COMPLETED\r\nCOMPLETED:20260616T080000Z"),
                    newline="")
    world.run("sync", now="2026-06-16T12:00:00Z")
    [task] = world.tasks_json(now="2026-06-16T12:00:00Z")
    assert task["state"] == "done"
    assert world.people(now="2026-06-16T12:00:00Z")["Bob Stone"]["due"] == "2026-07-16"
    # done is done: a rerun writes nothing new
    world.run("sync", now="2026-06-17T12:00:00Z")
    assert len(world.tasks_json()) == 1


def test_percent_complete_100_is_done(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.run("--backfill", now=NOW)
    [task] = world.tasks_json()
    path = world.tasks / f"{task['uid']}.ics"
    path.write_text(path.read_text().replace("STATUS:NEEDS-ACTION", "PERCENT-COMPLETE:100"), newline="")
    world.run("sync", now="2026-06-16T12:00:00Z")
    assert world.tasks_json()[0]["state"] == "done"
    # no COMPLETED time: the day syncd saw it done counts
    assert world.people(now="2026-06-16T12:00:00Z")["Bob Stone"]["due"] == "2026-07-16"


def test_dismissed_when_deleted_and_never_written_again(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.add_event("m1", event("m1", "20260401T120000", "Lunch", ["bob@example.com"]))
    world.run("--backfill", now=NOW)
    [task] = world.tasks_json()
    (world.tasks / f"{task['uid']}.ics").unlink()
    world.run("sync", now="2026-06-16T10:00:00Z")
    world.run("sync", now="2026-06-17T10:00:00Z")
    assert [t["state"] for t in world.tasks_json()] == ["dismissed"]
    assert world.task_files() == {}
    assert json.loads(world.run("tasks", "--json", now=NOW).stdout) == []  # open only


@pytest.mark.parametrize(
    ("bday", "now", "due", "summary"),
    [
        ("1990-06-18", NOW, "2026-06-18", "Dana Park's birthday (18 Jun)"),
        ("--0615", NOW, "2026-06-15", "Dana Park's birthday (15 Jun)"),
        ("19900622", NOW, "2026-06-22", "Dana Park's birthday (22 Jun)"),
        ("1992-02-29", "2027-02-25T10:00:00Z", "2027-02-28", "Dana Park's birthday (28 Feb)"),
        ("1992-02-29", "2028-02-25T10:00:00Z", "2028-02-29", "Dana Park's birthday (29 Feb)"),
    ],
)
def test_birthday(world: World, bday: str, now: str, due: str, summary: str) -> None:
    world.add_contact("dana", vcard("Dana Park", "dana@example.com", bday=bday))
    world.run("--backfill", now=now)
    [task] = world.tasks_json(now=now)
    assert (task["rule"], task["due"]) == ("birthday", due)
    assert summary in _by_summary(world)
    world.run("sync", now=now)
    assert len(world.task_files()) == 1


def test_birthday_outside_days_before_waits(world: World) -> None:
    world.add_contact("dana", vcard("Dana Park", "dana@example.com", bday="1990-06-23"))
    world.run("--backfill", now=NOW)
    assert world.tasks_json() == []
    world.run("sync", now="2026-06-16T10:00:00Z")
    assert [t["due"] for t in world.tasks_json()] == ["2026-06-23"]


def test_anniversary_and_one_per_year(world: World) -> None:
    world.add_contact("dana", vcard("Dana Park", "dana@example.com", anniversary="2010-06-20"))
    world.run("--backfill", now=NOW)
    [task] = world.tasks_json()
    assert task["rule"] == "anniversary" and task["due"] == "2026-06-20"
    assert "Dana Park's anniversary (20 Jun)" in _by_summary(world)
    world.run("sync", now="2027-06-14T10:00:00Z")
    assert sorted(t["due"] for t in world.tasks_json()) == ["2026-06-20", "2027-06-20"]


def test_tasks_as_event_writes_all_day_events_with_alarm(world: World) -> None:
    world.write_config(tasks_as="event")
    world.add_contact("dana", vcard("Dana Park", "dana@example.com", bday="1990-06-18"))
    world.run("--backfill", now=NOW)
    [text] = world.task_files().values()
    comp = _todo(text)
    assert comp.name == "VEVENT" and comp.decoded("dtstart").isoformat() == "2026-06-18"
    assert any(c.name == "VALARM" for c in comp.walk())


def test_backfill_twice_is_byte_identical(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends", bday="1980-06-17"))
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com", groups="Family"))
    world.add_event("m1", event("m1", "20260614T120000", "Lunch", ["bob@example.com", "ana@example.com"]))
    world.run("--backfill", now=NOW)
    files, people = world.task_files(), world.people()
    assert len(files) == 3  # two first meetings and a birthday
    world.run("--backfill", now=NOW)
    assert world.task_files() == files
    assert world.people() == people


def test_dry_run_writes_nothing(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    out = world.run("--backfill", "--dry-run", now=NOW)
    assert "would write: 1" in out.stdout and "Catch up with Bob Stone" in out.stdout
    assert not (world.root / "state").exists()
    assert not world.tasks.exists() or world.task_files() == {}
    world.run("--backfill", now=NOW)
    before = (world.root / "state" / "ledger.sqlite3").read_bytes()
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com", groups="Friends"))
    out = world.run("sync", "--dry-run", now=NOW)
    assert "Catch up with Ana Lima" in out.stdout
    assert len(world.task_files()) == 1
    assert (world.root / "state" / "ledger.sqlite3").read_bytes() == before


def test_malformed_object_is_skipped_with_a_warning_naming_account_and_href(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.add_event("good", event("good", "20260614T120000", "Lunch", ["bob@example.com"]))
    world.add_event("bad", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:bad\r\nDTSTART:2026-99-99\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    world.add_event("badtz", event("badtz", "20260613T120000", "Lunch", ["bob@example.com"], tzid="Mars/Olympus"))
    out = world.run("--backfill", now=NOW)
    assert re.search(r"account files: bad\.ics: skipped", out.stderr)
    assert re.search(r"account files: badtz\.ics: skipped", out.stderr)
    assert "Traceback" not in out.stderr
    assert world.people()["Bob Stone"]["interactions"] == 1


def test_one_failing_account_exits_1_others_saved(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.write_config(extra=f'\n[accounts.gone]\ntype = "vdir"\ncalendars = ["{world.root}/nowhere"]\n')
    out = world.run("--backfill", now=NOW, check=False)
    assert out.returncode == 1
    assert "gone" in out.stdout and "does not exist" in out.stdout + out.stderr
    assert "Bob Stone" in world.people()
    status = json.loads(world.run("status", "--json", now=NOW).stdout)
    by = {a["name"]: a for a in status["accounts"]}
    assert by["gone"]["last_error"] and by["files"]["last_error"] is None
    assert by["files"]["last_success"] == NOW and by["files"]["collections"] == 3
    assert (by["files"]["objects"], by["gone"]["objects"]) == (1, 0)  # Bob's card
    assert status["ledger_bytes"] > 0


def test_every_account_unreachable_exits_75(world: World) -> None:
    world.config.write_text(world.config.read_text().replace(f'["{world.book}"]', f'["{world.root}/missing"]'))
    assert world.run("sync", now=NOW, check=False).returncode == 75


def test_recurring_series_with_override_and_exdate(world: World) -> None:
    world.add_contact("eva", vcard("Eva Novak", "eva@example.com", groups="Friends"))
    series = event("weekly", "20260504T100000", "1:1", ["eva@example.com"],
                   extra=["RRULE:FREQ=WEEKLY;COUNT=8", "EXDATE;TZID=Europe/Berlin:20260511T100000"])
    moved = event("weekly", "20260520T150000", "1:1 moved", ["eva@example.com"],
                  extra=["RECURRENCE-ID;TZID=Europe/Berlin:20260518T100000"])
    cancelled = event("weekly", "20260525T100000", "1:1", ["eva@example.com"],
                      extra=["RECURRENCE-ID;TZID=Europe/Berlin:20260525T100000", "STATUS:CANCELLED"])
    body = lambda t: t.split("BEGIN:VEVENT")[1].split("END:VCALENDAR")[0]  # noqa: E731
    world.add_event("weekly", series.replace("END:VCALENDAR", "BEGIN:VEVENT" + body(moved) + "BEGIN:VEVENT" + body(cancelled) + "END:VCALENDAR"))
    world.run("--backfill", now=NOW)
    eva = world.people()["Eva Novak"]
    # 8 weekly from 4 May (to 22 Jun): minus the EXDATE, minus the cancelled one; 15 Jun 10:00
    # local has started, 22 Jun is upcoming.
    assert eva["interactions"] == 5
    assert eva["next_meeting"] == "2026-06-22T08:00:00Z"
    assert eva["first_met"] == "2026-05-04T08:00:00Z"


def test_same_meeting_in_two_calendars_counts_once(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com"))
    text = event("shared", "20260610T120000", "Lunch", ["bob@example.com"])
    world.add_event("shared", text)
    world.add_event("shared", text, second=True)
    world.run("--backfill", now=NOW)
    assert world.people()["Bob Stone"]["interactions"] == 1


def test_title_matching_and_its_ambiguity_rule(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", nickname="Bobby"))
    world.add_contact("al1", vcard("Al Green", "al1@example.com"))
    world.add_contact("al2", vcard("Al Green", "al2@example.com"))
    world.add_event("t1", event("t1", "20260610T120000", "Lunch with bob stone", organizer=None))
    world.add_event("t2", event("t2", "20260611T120000", "Drinks w/ Bobby!", organizer=None))
    world.add_event("t3", event("t3", "20260612T120000", "Coffee with Al Green", organizer=None))
    world.add_event("t4", event("t4", "20260612T120000", "Bob Stoneware fair", organizer=None))
    world.run("--backfill", now=NOW)
    people = json.loads(world.run("people", "--json", now=NOW).stdout)
    assert [p["interactions"] for p in people if p["name"] == "Bob Stone"] == [2]
    assert [p["interactions"] for p in people if p["name"] == "Al Green"] == [0, 0]


def test_config_example_loads_through_check(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    from syncd import config

    cfg = config.load(root / "config.example.toml")
    assert {a.type for a in cfg.accounts} >= {"vdir"}


@pytest.mark.parametrize(
    ("snippet", "needle"),
    [
        ('[syncd]\ninterval = "15 minutes"\n', "syncd.interval: found '15 minutes', expected a duration"),
        ('[syncd]\nintervall = "15m"\n', "syncd.intervall"),
        ('[inference]\nmax_attendees = 0\n', "inference.max_attendees: found 0"),
        ('[rules.keep_in_touch]\ngroups = { Friends = "monthly" }\n', "rules.keep_in_touch.groups"),
        ('[syncd]\ntimezone = "Mars/Base"\n', "syncd.timezone: found 'Mars/Base', expected an IANA"),
        ('[accounts.x]\ntype = "vdir"\ncolour = "red"\n', "accounts.x.colour"),
        ('[syncd]\nwrite_to = "nope"\n', "syncd.write_to: found 'nope'"),
        ("[syncd\n", "expected valid TOML"),
    ],
)
def test_bad_config_names_file_key_value_and_exits_78(tmp_path: Path, snippet: str, needle: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(snippet)
    proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(cfg), "sync"], capture_output=True, text=True)
    assert proc.returncode == 78, proc.stderr
    assert str(cfg) in proc.stderr and needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()


def test_unknown_connector_type_exits_69(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[accounts.x]\ntype = "exchange"\n')
    proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(cfg), "sync"], capture_output=True, text=True)
    assert proc.returncode == 69 and "exchange" in proc.stderr


def test_bad_command_line_exits_2(world: World) -> None:
    assert world.run("--since", "2020-01-01", check=False).returncode == 2
    assert world.run("--backfill", "--since", "yesterday", check=False).returncode == 2
    assert world.run("frobnicate", check=False).returncode == 2


def test_ledger_is_private(world: World) -> None:
    world.run("--backfill", now=NOW)
    ledger = world.root / "state" / "ledger.sqlite3"
    assert ledger.stat().st_mode & 0o777 == 0o600
    assert ledger.parent.stat().st_mode & 0o777 == 0o700


def _big_world(w: World, n: int = 400) -> None:
    for i in range(40):
        w.add_contact(f"c{i}", vcard(f"Person {i:02d}", f"p{i}@example.com", groups="Friends" if i % 2 else "Family",
                                     bday=f"1990-06-{15 + i % 5:02d}"))
    for i in range(n):
        day = 1 + i % 28
        month = 1 + (i // 28) % 6
        w.add_event(f"e{i}", event(f"e{i}", f"2026{month:02d}{day:02d}T1{i % 10}0000", f"Meeting {i}",
                                   [f"p{(i * 7) % 40}@example.com", f"p{(i * 3) % 40}@example.com"],
                                   extra=["RRULE:FREQ=WEEKLY;COUNT=3"] if i % 25 == 0 else None))


def test_sigkill_during_backfill_then_rerun_gives_the_same_end_state(tmp_path: Path) -> None:
    clean = World(tmp_path / "clean")
    _big_world(clean)
    clean.run("--backfill", now=NOW)
    want_files, want_people = clean.task_files(), clean.people()
    assert want_files
    crashed = World(tmp_path / "crashed")
    _big_world(crashed)
    for delay in (0.4, 0.8, 1.2, 1.6, 2.0):
        proc = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(crashed.config), "--backfill"],
                                env=crashed.env(NOW), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    crashed.run("--backfill", now=NOW)
    assert crashed.task_files() == want_files
    assert crashed.people() == want_people
    assert not list(crashed.tasks.glob(".*"))  # no temp files left behind


def test_me_is_not_a_person_and_declined_meetings_do_not_count(world: World) -> None:
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.add_event("d", event("d", "20260610T120000", "Pitch", [f"{ME};PARTSTAT=DECLINED", "bob@example.com"]))
    world.add_event("bd", event("bd", "20260611T120000", "Pitch 2", ["bob@example.com;PARTSTAT=DECLINED"]))
    world.add_event("room", event("room", "20260612T120000", "Sync", ["bob@example.com", "room1@example.com;CUTYPE=ROOM"]))
    world.run("--backfill", now=NOW)
    people = world.people()
    assert people["Bob Stone"]["interactions"] == 1
    assert ME not in {e for p in people.values() for e in p["emails"]}
    assert "room1@example.com" not in people


def test_the_report_of_a_pass_counts_the_overdue_and_names_the_longest_overdue(world: World) -> None:
    # 23 friends met three a day in January (due three a day 30 days later), names in
    # reverse order of their dues, so the 20th and 21st longest overdue share a due day;
    # the 20th (Friend F) comes in a later pass, so it is stored after the 21st. One met
    # last week is not due; one name is an emoji code.
    def friend(i: int) -> None:
        name = ":smile: Zed" if i == 0 else f"Friend {chr(ord('Z') - i)}"
        world.add_contact(f"c{i}", vcard(name, f"f{i}@example.com", groups="Friends"))
        world.add_event(f"m{i}", event(f"m{i}", f"202601{1 + i // 3:02d}T120000", "Coffee", [f"f{i}@example.com"]))

    for i in range(23):
        if i != 20:
            friend(i)
    world.add_contact("new", vcard("Newly Met", "new@example.com", groups="Friends"))
    world.add_event("recent", event("recent", "20260610T120000", "Coffee", ["new@example.com"]))
    world.run("--backfill", now=NOW)
    friend(20)
    out = world.run("sync", now=NOW).stdout.splitlines()
    overdue = json.loads(world.run("people", "--json", "--overdue", now=NOW).stdout)
    assert len(overdue) == 23 and "Newly Met" not in {p["name"] for p in overdue}
    at = out.index("Overdue: 23")
    listed = [f"  {p['name']} (due {p['due']}, last met {p['last_met'][:10]})" for p in overdue[:20]]
    assert out[at + 1:at + 21] == listed
    assert out[at + 1] == "  :smile: Zed (due 2026-01-31, last met 2026-01-01)"  # as written, no emoji
    assert out[at + 2].startswith("  Friend X (due 2026-01-31")  # a tie on the due day: by name
    assert [line.split(" (")[0] for line in out[at + 19:at + 21]] == ["  Friend F", "  Friend G"]
    assert out[at + 21] == "  ... and 3 more: syncd people --overdue"

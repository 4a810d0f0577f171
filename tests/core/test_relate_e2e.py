"""SPEC §8 and the new parts of §2–§5, through the ``syncd`` command on real folders.

Cadence sources and "off", weekly and daily limits across a week, milestones from
Apple, Evolution and KAddressBook cards, ``syncd person`` (text, JSON, exit 2),
``people --sort strength``, ``[rules.first_meeting] max_others``, ``[inference] ignore``
and the validation of every new key. The clock is set by each test (``SYNCD_NOW``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ME, World, event, vcard

NOW = "2026-06-15T10:00:00Z"  # a Monday, 12:00 in Berlin


def configure(w: World, kit: str = "", inference: str = "", first: str = "", birthday: str = "",
              tail: str = "", groups: str = '{ Friends = "30d" }', daily_limit: int = 10) -> None:
    """Rewrite the world's config with extra keys in each table."""
    w.config.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "Europe/Berlin"
write_to = "files"
ledger = "{w.root / 'state' / 'ledger.sqlite3'}"

[accounts.files]
type = "vdir"
calendars = ["{w.root / 'calendars'}/*"]
addressbooks = ["{w.book}"]
tasks = "{w.tasks}"

[inference]
{inference}

[rules.first_meeting]
{first}

[rules.keep_in_touch]
daily_limit = {daily_limit}
groups = {groups}
{kit}

[rules.birthday]
{birthday}

{tail}
""")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def meetings(w: World, who: str, days_ago: list[int], summary: str = "Coffee", others: tuple[str, ...] = ()) -> None:
    """One-on-ones (plus ``others``) with ``who`` this many days before NOW, at 09:00 Berlin."""
    for d in days_ago:
        day = dt.date(2026, 6, 15) - dt.timedelta(days=d)
        uid = f"{who.split('@')[0]}-{d}"
        w.add_event(uid, event(uid, f"{day:%Y%m%d}T090000", summary, [who, *others]))


def catch_ups(w: World, now: str = NOW) -> dict[str, dict[str, object]]:
    return {str(t["person"]): t for t in w.tasks_json(now=now) if t["rule"] == "keep_in_touch"}


# -- cadence sources --------------------------------------------------------------------------
def test_each_cadence_source_and_off(world: World) -> None:
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com"))  # no group: learned
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    world.add_contact("carla", vcard("Carla Diaz", "carla@example.com", "carla@work.example", groups="Friends"))
    world.add_contact("dan", vcard("Dan Okafor", "dan@example.com", groups="Friends"))
    world.add_contact("eva", vcard("Eva Novak", "eva@example.com"))  # too few meetings to learn from
    meetings(world, "ana@example.com", [60, 50, 40, 30])  # usual gap 10 -> learned 20
    meetings(world, "bob@example.com", [45])
    meetings(world, "carla@example.com", [45])
    meetings(world, "dan@example.com", [45])
    meetings(world, "eva@example.com", [90, 60])
    configure(world, tail='[people."CARLA@work.example"]\ncadence = "21d"\n\n[people."dan@example.com"]\ncadence = "off"\n')
    world.run("--backfill", now=NOW)
    people = world.people()
    seen = {n: (p["cadence_days"], p["cadence_source"], p["usual_gap_days"]) for n, p in people.items()}
    assert seen == {"Ana Lima": (20, "learned", 10), "Bob Stone": (30, "group", None),
                    "Carla Diaz": (21, "person", None), "Dan Okafor": (None, None, None),
                    "Eva Novak": (None, None, None)}
    assert people["Ana Lima"]["due"] == "2026-06-05" and people["Dan Okafor"]["due"] is None
    tasks = catch_ups(world)
    assert sorted(tasks) == ["Ana Lima", "Bob Stone", "Carla Diaz"]
    assert tasks["Ana Lima"]["reason"] == "last met 16 May 2026 (Coffee); you usually meet every 10 days"
    assert tasks["Bob Stone"]["reason"] == "last met 1 May 2026 (Coffee); Friends every 30 days"
    assert tasks["Carla Diaz"]["reason"] == "last met 1 May 2026 (Coffee); every 21 days, set for carla@work.example"


def test_learn_off_and_learned_bounds(world: World) -> None:
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com"))
    meetings(world, "ana@example.com", [100, 99, 98, 97])  # usual gap 1 -> 2 days, raised to learn_min
    configure(world, kit='learn_min = "30d"\nlearn_max = "60d"')
    world.run("--backfill", now=NOW)
    ana = world.people()["Ana Lima"]
    assert (ana["usual_gap_days"], ana["cadence_days"], ana["cadence_source"]) == (1, 30, "learned")
    configure(world, kit="learn = false")
    world.run("sync", now=NOW)
    ana = world.people()["Ana Lima"]
    assert (ana["usual_gap_days"], ana["cadence_days"], ana["cadence_source"]) == (1, None, None)


# -- weekly and daily limits together --------------------------------------------------------------
def test_weekly_and_daily_limits_across_a_week(world: World) -> None:
    for i in range(8):
        world.add_contact(f"f{i}", vcard(f"Friend {i}", f"f{i}@example.com", groups="Friends"))
    configure(world, kit="weekly_limit = 3", daily_limit=2)
    written = []
    monday = dt.date(2026, 6, 15)
    for d in range(9):  # Monday to the next Tuesday
        day = monday + dt.timedelta(days=d)
        now = f"{day.isoformat()}T08:00:00Z"
        world.run("sync", now=now)
        written.append(len(catch_ups(world, now=now)))
    per_day = [b - a for a, b in zip([0, *written], written, strict=False)]
    assert per_day == [2, 1, 0, 0, 0, 0, 0, 2, 1]
    # earliest due first, ties by name
    assert sorted(catch_ups(world))[:3] == ["Friend 0", "Friend 1", "Friend 2"]


# -- milestones -------------------------------------------------------------------------------------
APPLE = """BEGIN:VCARD\r
VERSION:3.0\r
PRODID:-//Apple Inc.//macOS 14.5//EN\r
N:Lima;Ana;;;\r
FN:Ana Lima\r
EMAIL;type=INTERNET;type=HOME;type=pref:ana@example.com\r
BDAY:1990-06-30\r
item1.X-ABDATE;type=pref:2019-06-18\r
item1.X-ABLabel:work anniversary\r
item2.X-ABDATE:2015-06-19\r
item2.X-ABLabel:_$!<Anniversary>!$_\r
item3.X-ABDATE:2020-06-17\r
item3.X-ABLabel:_$!<Other>!$_\r
item4.X-ABDATE:2021-06-17\r
X-ABUID:5C8F6B5A-8D1F-4E0E-9E3A-2C1C9F1B9A11:ABPerson\r
END:VCARD\r
"""
EVOLUTION = """BEGIN:VCARD\r
VERSION:3.0\r
UID:pas-id-66A1B2C3000001\r
FN:Bob Stone\r
N:Stone;Bob;;;\r
EMAIL;TYPE=HOME:bob@example.com\r
X-EVOLUTION-ANNIVERSARY:2012-06-20\r
X-EVOLUTION-FILE-AS:Stone\\, Bob\r
END:VCARD\r
"""
KADDRESSBOOK = """BEGIN:VCARD\r
VERSION:3.0\r
UID:Kq7Hd0aZpQ\r
FN:Carla Diaz\r
N:Diaz;Carla;;;\r
EMAIL:carla@example.com\r
X-KADDRESSBOOK-X-Anniversary:2001-06-21\r
END:VCARD\r
"""
XANNIV = """BEGIN:VCARD\r
VERSION:3.0\r
FN:Dan Okafor\r
EMAIL:dan@example.com\r
X-ANNIVERSARY:--0616\r
END:VCARD\r
"""


def test_milestones_from_apple_evolution_and_kaddressbook(world: World) -> None:
    for name, text in (("apple", APPLE), ("evo", EVOLUTION), ("kab", KADDRESSBOOK), ("x", XANNIV)):
        world.add_contact(name, text)
    configure(world)
    world.run("--backfill", now=NOW)
    tasks = {(t["rule"], t["person"]): t for t in world.tasks_json() if t["rule"] != "keep_in_touch"}
    assert sorted(tasks) == [("anniversary", "Ana Lima"), ("anniversary", "Bob Stone"),
                             ("anniversary", "Carla Diaz"), ("anniversary", "Dan Okafor"),
                             ("milestone", "Ana Lima")]
    ms = tasks[("milestone", "Ana Lima")]
    assert (ms["due"], ms["reason"]) == ("2026-06-18", "work anniversary on 18 Jun 2026 (7 years)")
    files = world.task_files()
    assert "SUMMARY:Ana Lima's work anniversary (18 Jun)" in files[f"{ms['uid']}.ics"]
    assert tasks[("anniversary", "Bob Stone")]["due"] == "2026-06-20"
    assert tasks[("anniversary", "Carla Diaz")]["due"] == "2026-06-21"
    assert tasks[("anniversary", "Ana Lima")]["due"] == "2026-06-19"  # Apple's _$!<Anniversary>!$_
    # one per person, label and year: later passes write nothing again
    world.run("sync", now="2026-06-17T10:00:00Z")
    assert len([t for t in world.tasks_json() if t["rule"] == "milestone"]) == 1


def test_milestones_can_be_switched_off(world: World) -> None:
    world.add_contact("apple", APPLE)
    configure(world, birthday="milestones = false")
    world.run("--backfill", now=NOW)
    assert [t["rule"] for t in world.tasks_json() if t["rule"] != "keep_in_touch"] == ["anniversary"]


# -- syncd person ---------------------------------------------------------------------------------
def _person_world(world: World) -> None:
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com"))
    world.add_contact("ana2", vcard("Ana Lima Costa", "costa@example.com", groups="Friends"))
    world.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    meetings(world, "ana@example.com", [60, 50, 40, 30], summary="Coffee at Lisboa")
    meetings(world, "bob@example.com", [200], summary="Offsite", others=("x1@example.org", "x2@example.org"))
    uid = "ana-next"
    world.add_event(uid, event(uid, "20260620T090000", "Dinner", ["ana@example.com"]), second=True)
    configure(world)
    world.run("--backfill", now=NOW)


def test_person_text_and_json(world: World) -> None:
    _person_world(world)
    text = world.run("person", "ana lima", now=NOW).stdout  # the whole name wins over "Ana Lima Costa"
    for needle in ("Ana Lima", "ana@example.com", "learned: you usually meet every 10 days", "every 20 days",
                   "last met 30 days ago; 4 days together in the last year; mostly one-on-one",
                   "Coffee at Lisboa", "Upcoming", "Dinner", "History (4, newest first)", "Follow-ups"):
        assert needle in text, (needle, text)
    assert "Ana Lima Costa" not in text
    data = json.loads(world.run("person", "ANA@example.COM", "--json", now=NOW).stdout)
    people = world.people()
    assert {k: v for k, v in data.items() if k not in ("history", "upcoming", "followups")} == people["Ana Lima"]
    assert [h["start"] for h in data["history"]] == sorted((h["start"] for h in data["history"]), reverse=True)
    first = data["history"][0]
    assert first == {"start": "2026-05-16T07:00:00Z", "end": "2026-05-16T08:00:00Z", "summary": "Coffee at Lisboa",
                     "account": "files", "calendar": "personal", "others": 1, "organised": True}
    assert [(u["summary"], u["calendar"]) for u in data["upcoming"]] == [("Dinner", "work")]
    # a meeting is scheduled, so no catch-up; the first-meeting rule is outside lookback
    assert data["followups"] == []
    bob = json.loads(world.run("person", "bob", "--json", now=NOW).stdout)
    assert bob["history"][0]["others"] == 3 and bob["strength"] == people["Bob Stone"]["strength"]
    assert [f["rule"] for f in bob["followups"]] == ["keep_in_touch"]
    assert bob["followups"][0] == next(t for t in world.tasks_json() if t["person"] == "Bob Stone")


def test_person_ambiguous_or_unknown_exits_2(world: World) -> None:
    _person_world(world)
    many = world.run("person", "ana", now=NOW, check=False)
    assert many.returncode == 2
    assert "Ana Lima <ana@example.com>" in many.stderr and "Ana Lima Costa <costa@example.com>" in many.stderr
    none = world.run("person", "zed", now=NOW, check=False)
    assert none.returncode == 2 and "nobody matches 'zed'" in none.stderr
    assert "Traceback" not in many.stderr + none.stderr


def test_people_sort_strength(world: World) -> None:
    _person_world(world)
    listed = json.loads(world.run("people", "--json", "--sort", "strength", now=NOW).stdout)
    scores = [p["strength"] for p in listed]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert listed[0]["name"] == "Ana Lima" and listed[-1]["strength"] == 0
    by_last = [p["name"] for p in json.loads(world.run("people", "--json", "--sort", "last", now=NOW).stdout)]
    assert by_last[:2] == ["Ana Lima", "Bob Stone"]
    assert world.run("people", "--sort", "age", check=False).returncode == 2


# -- max_others and ignore ----------------------------------------------------------------------------
def test_max_others_limits_first_meeting(world: World) -> None:
    world.add_contact("lin", vcard("Lin Wu", "lin@example.com"))
    kickoff = [f"c{i}@work.example" for i in range(4)]
    world.add_event("kick", event("kick", "20260613T090000", "Kickoff", kickoff))  # 4 others each
    world.add_event("trio", event("trio", "20260614T090000", "Trio", ["t1@example.org", "t2@example.org"]))
    world.add_event("lin", event("lin", "20260614T120000", "Lunch with Lin Wu", organizer=None))  # title match: 1
    configure(world, first="max_others = 3")
    world.run("--backfill", now=NOW)
    first = sorted(t["person"] for t in world.tasks_json() if t["rule"] == "first_meeting")
    assert first == ["Lin Wu", "t1@example.org", "t2@example.org"]
    assert world.people()["c0@work.example"]["interactions"] == 1  # still a person, with history


def test_ignore_keeps_a_bot_out_of_people_and_counts(world: World) -> None:
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com"))
    world.add_contact("bot", vcard("Scheduler", "bot@noreply.example.org"))
    meetings(world, "ana@example.com", [60, 50, 40, 30], others=("Bot@NoReply.example.org",))
    configure(world, inference='ignore = ["*@noreply.example.org"]')
    world.run("--backfill", now=NOW)
    people = world.people()
    assert sorted(people) == ["Ana Lima"]
    data = json.loads(world.run("person", "ana", "--json", now=NOW).stdout)
    assert {h["others"] for h in data["history"]} == {1}
    assert data["cadence_source"] == "learned"


# -- config ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("snippet", "needle"),
    [
        ('[people."ana@example.org"]\ncadence = "monthly"\n', "cadence: found 'monthly', expected a duration"),
        ('[people."ana@example.org"]\ncadense = "21d"\n', "cadense: found '21d'"),
        ('[people.ana]\ncadence = "21d"\n', "people.ana: found {'cadence': '21d'}, expected an email address"),
        ('[people."ana@example.org"]\n', "cadence: found missing"),
        ("[rules.keep_in_touch]\nweekly_limit = -1\n", "rules.keep_in_touch.weekly_limit: found -1"),
        ("[rules.keep_in_touch]\nlearn_factor = 0\n", "rules.keep_in_touch.learn_factor: found 0"),
        ('[rules.keep_in_touch]\nlearn_min = "400d"\n', "learn_min: found '400d', expected a duration no longer"),
        ('[rules.keep_in_touch]\nlearn_max = "12h"\n', "learn_max: found '12h', expected a duration of at least 1d"),
        ('[inference]\nignore = "*@x.org"\n', "inference.ignore: found '*@x.org', expected a list of address globs"),
        ('[rules.first_meeting]\nmax_others = "3"\n', "rules.first_meeting.max_others: found '3'"),
        ('[rules.birthday]\nmilestones = "yes"\n', "rules.birthday.milestones: found 'yes'"),
    ],
)
def test_bad_new_keys_name_file_key_value_and_exit_78(tmp_path: Path, snippet: str, needle: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(snippet)
    proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(cfg), "sync"], capture_output=True, text=True)
    assert proc.returncode == 78, proc.stderr
    assert str(cfg) in proc.stderr and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_bundled_example_shows_a_learned_catch_up_and_a_milestone(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    shutil.copytree(root, tmp_path / "examples", ignore=shutil.ignore_patterns("state"))
    w = World(tmp_path / "w")
    w.config = tmp_path / "examples" / "config.toml"
    w.run("--backfill", now="2026-12-02T09:00:00Z")
    tasks = w.tasks_json(now="2026-12-02T09:00:00Z")
    learned = [t for t in tasks if t["rule"] == "keep_in_touch" and "you usually meet every" in str(t["reason"])]
    assert [t["person"] for t in learned] == ["Mira Jensen"]
    assert {t["person"] for t in tasks if t["rule"] == "milestone"} == {"Lena Vogel", "Mira Jensen"}
    assert "Omar Said" in {t["person"] for t in tasks if t["rule"] == "anniversary"}

"""A person stays the same person while their records change (SPEC §4), end to end.

Each test edits address-book records the way a user does (new address, rename, a card
moved to another address book, two people merged, one split) between real `syncd`
passes on a vdir world, and checks what the user would see: one person with the
whole history, and no follow-up written twice.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

from syncd.ledger import SCHEMA_VERSION
from tests.helpers import World, event, vcard

DATA = Path(__file__).resolve().parents[1] / "data" / "v1-world"


def _rules(world: World) -> Counter[tuple[str, str]]:
    return Counter((t["rule"], t["person"]) for t in world.tasks_json(now="2026-08-01T10:00:00Z"))


def test_a_replaced_address_keeps_the_person_and_their_history(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_contact("ana", vcard("Ana Lima", "ana@old.example", groups="Friends", uid="ana-1"))
    w.add_event("e1", event("e1", "20260610T100000", "Coffee", ["ana@old.example"]))
    w.run("--backfill", now="2026-06-11T10:00:00Z")
    w.add_contact("ana", vcard("Ana Lima", "ana@new.example", groups="Friends", uid="ana-1"))
    w.add_event("e2", event("e2", "20260612T100000", "Lunch", ["ana@new.example"]))
    w.run("sync", now="2026-06-13T10:00:00Z")
    people = w.people(now="2026-06-13T10:00:00Z")
    assert list(people) == ["Ana Lima"]  # the old address is not left behind as someone else
    assert people["Ana Lima"]["interactions"] == 2
    assert people["Ana Lima"]["emails"] == ["ana@new.example"]
    # due 30 days after the last meeting: one catch-up, even after another address change
    w.run("sync", now="2026-07-20T10:00:00Z")
    w.add_contact("ana", vcard("Ana Lima", "ana@third.example", groups="Friends", uid="ana-1"))
    w.run("sync", now="2026-07-21T10:00:00Z")
    assert _rules(w) == Counter({("first_meeting", "Ana Lima"): 1, ("keep_in_touch", "Ana Lima"): 1})


def test_a_rename_and_a_move_to_another_address_book_keep_the_person(tmp_path: Path) -> None:
    w = World(tmp_path)
    other = tmp_path / "contacts" / "other"
    other.mkdir(parents=True)
    w.config.write_text(w.config.read_text().replace(f'addressbooks = ["{w.book}"]',
                                                     f'addressbooks = ["{tmp_path / "contacts"}/*"]'))
    w.add_contact("bob", vcard("Bob Stone", "bob@example.org", groups="Friends", uid="bob-1"))
    w.add_event("e1", event("e1", "20260610T100000", "Coffee", ["bob@example.org"]))
    w.run("--backfill", now="2026-06-11T10:00:00Z")
    (w.book / "bob.vcf").unlink()
    (other / "robert.vcf").write_text(vcard("Robert Stone", "bob@example.org", groups="Friends", uid="bob-1"))
    # the first address book is empty now: syncd believes that only when told (SPEC §6)
    w.run("sync", "--allow-empty", "files", now="2026-06-12T10:00:00Z")
    people = w.people(now="2026-06-12T10:00:00Z")
    assert list(people) == ["Robert Stone"] and people["Robert Stone"]["interactions"] == 1
    w.run("sync", now="2026-07-20T10:00:00Z")
    tasks = w.tasks_json(now="2026-07-20T10:00:00Z")
    assert sorted(t["rule"] for t in tasks) == ["first_meeting", "keep_in_touch"]


def test_an_unknown_attendee_who_gets_a_card_is_not_met_for_the_first_time_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_event("e1", event("e1", "20260610T100000", "Intro", ["carl@example.net;CN=Carl Cruz"]))
    w.run("--backfill", now="2026-06-11T10:00:00Z")
    w.add_contact("carl", vcard("Carl Cruz", "carl@example.net", "carl@work.example", uid="carl-1"))
    w.add_event("e2", event("e2", "20260612T100000", "Follow-up", ["carl@work.example"]))
    w.run("sync", now="2026-06-13T10:00:00Z")
    people = w.people(now="2026-06-13T10:00:00Z")
    assert list(people) == ["Carl Cruz"] and people["Carl Cruz"]["interactions"] == 2
    assert people["Carl Cruz"]["in_address_book"] is True
    assert [t["rule"] for t in w.tasks_json(now="2026-06-13T10:00:00Z")] == ["first_meeting"]


def test_two_people_merged_into_one_carry_both_histories_and_get_one_catch_up(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_contact("ana", vcard("Ana Lima", "ana@example.org", groups="Friends", uid="ana-1"))
    w.add_contact("al", vcard("A. Lima", "al@work.example", groups="Friends", uid="al-1"))
    w.add_event("e1", event("e1", "20260601T100000", "Coffee", ["ana@example.org"]))
    w.add_event("e2", event("e2", "20260602T100000", "Review", ["al@work.example"]))
    w.run("--backfill", now="2026-06-03T10:00:00Z")
    assert _rules(w) == Counter({("first_meeting", "Ana Lima"): 1, ("first_meeting", "A. Lima"): 1})
    # the user learns they are one person and merges the cards
    (w.book / "al.vcf").unlink()
    w.add_contact("ana", vcard("Ana Lima", "ana@example.org", "al@work.example", groups="Friends", uid="ana-1"))
    w.run("sync", now="2026-06-04T10:00:00Z")
    people = w.people(now="2026-06-04T10:00:00Z")
    assert people["Ana Lima"]["interactions"] == 2
    assert people["Ana Lima"]["emails"] == ["al@work.example", "ana@example.org"]
    story = json.loads(w.run("person", "ana lima", "--json", now="2026-06-04T10:00:00Z").stdout)
    assert [h["summary"] for h in story["history"]] == ["Review", "Coffee"]
    assert sorted(f["person"] for f in story["followups"]) == ["A. Lima", "Ana Lima"]  # both first meetings
    for day in ("2026-07-10", "2026-07-11", "2026-07-12"):
        w.run("sync", now=f"{day}T10:00:00Z")
    kit = [t for t in w.tasks_json(now="2026-07-12T10:00:00Z") if t["rule"] == "keep_in_touch"]
    assert len(kit) == 1 and kit[0]["reason"].startswith("last met 2 Jun 2026")


def test_a_split_keeps_what_each_address_earned_and_writes_no_second_first_meeting(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.org", "rob@example.org", groups="Friends", uid="bob-1"))
    w.add_event("e1", event("e1", "20260610T100000", "Coffee", ["bob@example.org"]))
    w.add_event("e2", event("e2", "20260611T100000", "Tennis", ["rob@example.org"]))
    w.run("--backfill", now="2026-06-12T10:00:00Z")
    first = w.tasks_json(now="2026-06-12T10:00:00Z")
    assert [t["rule"] for t in first] == ["first_meeting"]
    # two people shared a card: the user splits it
    w.add_contact("bob", vcard("Bob Stone", "bob@example.org", groups="Friends", uid="bob-1"))
    w.add_contact("rob", vcard("Rob Ray", "rob@example.org", groups="Friends", uid="rob-1"))
    w.run("sync", now="2026-06-13T10:00:00Z")
    people = w.people(now="2026-06-13T10:00:00Z")
    assert people["Bob Stone"]["interactions"] == 1 and people["Rob Ray"]["interactions"] == 1
    assert people["Bob Stone"]["last_met"].startswith("2026-06-10")
    assert people["Rob Ray"]["last_met"].startswith("2026-06-11")
    after = w.tasks_json(now="2026-06-13T10:00:00Z")
    assert [(t["rule"], t["uid"]) for t in after] == [(t["rule"], t["uid"]) for t in first]


def _v1_world(tmp_path: Path) -> World:
    """The v0.1 world and ledger of tests/data, moved to ``tmp_path``."""
    for sub in ("calendars", "contacts", "tasks"):
        shutil.copytree(DATA / sub, tmp_path / sub)
    (tmp_path / "state").mkdir(mode=0o700)
    ledger = tmp_path / "state" / "ledger.sqlite3"
    shutil.copy(DATA / "ledger-v1.sqlite3", ledger)
    with sqlite3.connect(ledger) as db:  # the folders moved: say so, as a user's `mv` would not
        db.execute("UPDATE collections SET remote_id = replace(remote_id, '/tmp/syncd-v1', ?)", (str(tmp_path),))
    w = World.__new__(World)
    World.__init__(w, tmp_path)
    return w


def test_a_v1_ledger_is_upgraded_in_place_and_keeps_every_follow_up(tmp_path: Path) -> None:
    w = _v1_world(tmp_path)
    before = json.loads((DATA / "tasks-v1.json").read_text())
    files = sorted(p.name for p in w.tasks.iterdir())
    w.run("sync", now="2026-06-15T11:00:00Z")
    with sqlite3.connect(w.root / "state" / "ledger.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert w.tasks_json(now="2026-06-15T11:00:00Z") == before
    assert sorted(p.name for p in w.tasks.iterdir()) == files
    people = {p["name"]: p for p in json.loads((DATA / "people-v1.json").read_text())}
    now = w.people(now="2026-06-15T11:00:00Z")
    assert sorted(now) == sorted(people)
    for name, p in people.items():
        assert {k: now[name][k] for k in p} == p
    # Bob changes his address after the upgrade: still Bob, still one catch-up
    w.add_contact("bob", vcard("Bob Stone", "bob@new.example", groups="Family"))
    w.run("sync", now="2026-06-16T10:00:00Z")
    assert list(Counter((t["rule"], t["person"]) for t in w.tasks_json(now="2026-06-16T10:00:00Z")).values()) == [1] * 4


def test_one_person_at_a_meeting_under_two_addresses_met_once(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.org", "bob@work.example", uid="bob-1"))
    w.add_event("e1", event("e1", "20260610T100000", "Sync", ["bob@example.org", "bob@work.example"]))
    w.run("--backfill", now="2026-06-11T10:00:00Z")
    assert w.people(now="2026-06-11T10:00:00Z")["Bob Stone"]["interactions"] == 1
    story = json.loads(w.run("person", "bob@work.example", "--json", now="2026-06-11T10:00:00Z").stdout)
    assert len(story["history"]) == 1 and story["history"][0]["calendar"] == "personal"


def test_read_commands_on_a_v1_ledger_ask_for_a_sync_first(tmp_path: Path) -> None:
    w = _v1_world(tmp_path)
    proc = w.run("person", "ana", check=False)
    assert proc.returncode == 1 and "run `syncd sync`" in proc.stderr and "Traceback" not in proc.stderr
    w.run("sync", now="2026-06-15T11:00:00Z")
    assert "Ana Lima" in w.run("person", "ana", now="2026-06-15T11:00:00Z").stdout

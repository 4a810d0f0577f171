"""`syncd tasks` shows a follow-up's due date where the user moved it (issue 11 item 5),
while the rules keep deciding from the date syncd wrote."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import World, event, vcard


def test_tasks_show_the_due_date_the_user_moved(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.org", groups="Friends"))
    w.add_event("e1", event("e1", "20260501T100000", "Lunch", ["bob@example.org"]))
    w.run("--backfill", now="2026-06-15T10:00:00Z")
    [task] = w.tasks_json(now="2026-06-15T10:00:00Z")
    assert task["due"] == "2026-06-15"
    [(name, text)] = w.task_files().items()
    moved = re.sub(r"DUE;VALUE=DATE:\d{8}", "DUE;VALUE=DATE:20260620", text)
    assert moved != text
    (w.tasks / name).write_text(moved, newline="")
    w.run("sync", now="2026-06-16T10:00:00Z")
    [task] = w.tasks_json(now="2026-06-16T10:00:00Z")
    assert (task["due"], task["state"]) == ("2026-06-20", "open")
    assert "2026-06-20" in w.run("tasks", now="2026-06-16T10:00:00Z").stdout
    assert w.task_files()[name] == moved  # the user's edit is kept
    # moved back to where syncd put it: shown as written
    (w.tasks / name).write_text(text, newline="")
    w.run("sync", now="2026-06-17T10:00:00Z")
    assert w.tasks_json(now="2026-06-17T10:00:00Z")[0]["due"] == "2026-06-15"

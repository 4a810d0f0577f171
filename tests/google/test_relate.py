"""Milestones from Google People ``events`` (SPEC §5), through ``syncd`` against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.google.emulator import GoogleEmulator
from tests.google.test_cli import GWorld


@pytest.fixture
def world(tmp_path: Path, google_emulator: GoogleEmulator) -> Iterator[GWorld]:
    yield GWorld(tmp_path, google_emulator)


def _event(kind: str, formatted: str, month: int, day: int, year: int | None = None) -> dict[str, Any]:
    """A People ``Event`` as the API returns it: custom types carry the user's own label."""
    date = {"month": month, "day": day, **({"year": year} if year else {})}
    return {"metadata": {"primary": True, "source": {"type": "CONTACT", "id": "c1"}},
            "date": date, "type": kind, "formattedType": formatted}


def test_google_events_of_custom_types_are_milestones(world: GWorld) -> None:
    world.emu.add_person({
        "names": [{"displayName": "Ana Lima"}],
        "emailAddresses": [{"value": "ana@example.com"}],
        "events": [
            _event("Work anniversary", "Work anniversary", 6, 18, 2019),
            _event("anniversary", "Anniversary", 6, 19, 2015),
            _event("other", "Other", 6, 17, 2020),
            _event("First climb", "First climb", 6, 16),
            _event("Graduation", "Graduation", 9, 1, 2010),  # too far ahead
        ],
    })
    world.run("--backfill")
    tasks = {(t["rule"], t["due"]): t for t in world.tasks_json() if t["rule"] != "keep_in_touch"}
    assert sorted(tasks) == [("anniversary", "2026-06-19"), ("milestone", "2026-06-16"), ("milestone", "2026-06-18")]
    assert tasks[("milestone", "2026-06-18")]["reason"] == "Work anniversary on 18 Jun 2026 (7 years)"
    assert tasks[("milestone", "2026-06-16")]["reason"] == "First climb on 16 Jun 2026"
    titles = sorted(t["title"] for t in world.live_tasks())
    assert titles[:3] == ["Ana Lima's First climb (16 Jun)", "Ana Lima's Work anniversary (18 Jun)",
                          "Ana Lima's anniversary (19 Jun)"]
    world.run("sync", now="2026-06-16T10:00:00Z")
    assert len([t for t in world.tasks_json() if t["rule"] == "milestone"]) == 2

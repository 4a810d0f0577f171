"""Write the bundled example data (examples/): a fictional address book and a year of meetings.

Deterministic (a fixed seed and a fixed "today", 2026-12-02), so the files in the
repository are exactly what this prints. Run: python scripts/make_examples.py
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "examples"
TODAY = dt.date(2026, 12, 2)
ME = "alex@example.org"

PEOPLE = [
    # name, email, groups, birthday
    ("Ana Lima", "ana.lima@example.com", "Friends", "1990-12-05"),
    ("Bob Stone", "bob@stone.example", "Friends", "--0318"),
    ("Carla Diaz", "carla.diaz@example.net", "Family", "1962-12-08"),
    ("Dan Okafor", "dan@okafor.example", "Family", "1996-02-29"),
    ("Eva Novak", "eva.novak@example.com", "Network", None),
    ("Farid Haddad", "farid@example.org", "Network", "1984-07-01"),
    ("Grace Kim", "grace.kim@example.com", "Friends", "1991-12-09"),
    ("Hugo Martin", "hugo.martin@example.fr", "Network", None),
    ("Ines Costa", "ines@costa.example", "Friends", "1988-05-14"),
    ("Jonas Berg", "jonas.berg@example.se", "Network", None),
    ("Kaya Yilmaz", "kaya@example.com.tr", "Friends", "1993-09-21"),
    ("Liam Walsh", "liam.walsh@example.ie", "Network", None),
    ("Maya Patel", "maya.patel@example.in", "Family", "1970-01-30"),
    ("Noah Fischer", "noah@fischer.example", "Network", None),
    ("Olga Ivanova", "olga.ivanova@example.com", "Friends", "1987-11-11"),
    ("Pedro Alves", "pedro.alves@example.br", "Network", None),
    ("Quinn Taylor", "quinn@taylor.example", "Friends", None),
    ("Rosa Moreno", "rosa.moreno@example.es", "Family", "1958-06-02"),
    ("Sam Lee", "sam.lee@example.com", "Network", None),
    ("Tara Singh", "tara.singh@example.com", "Friends", "1994-12-03"),
    ("Uma Rao", "uma.rao@example.com", "Network", None),
    ("Victor Hugo Silva", "victor.silva@example.com", "Network", None),
    ("Wen Zhang", "wen.zhang@example.cn", "Friends", None),
    ("Ximena Torres", "ximena@torres.example", "Network", None),
    ("Yusuf Demir", "yusuf.demir@example.com", "Network", None),
    ("Zoe Brown", "zoe.brown@example.co.uk", "Friends", "1996-08-17"),
    ("Aiko Tanaka", "aiko.tanaka@example.jp", "Network", None),
    ("Ben Cohen", "ben.cohen@example.com", "Friends", None),
    ("Chloe Dubois", "chloe.dubois@example.fr", "Network", None),
    ("Diego Ramos", "diego.ramos@example.mx", "Network", None),
    ("Elif Aydin", "elif.aydin@example.com", "Friends", None),
    ("Finn Murphy", "finn.murphy@example.ie", None, None),
    ("Gita Sharma", "gita.sharma@example.com", None, "1979-12-06"),
    ("Hana Novotna", "hana.novotna@example.cz", "Network", None),
    ("Ivan Petrov", "ivan.petrov@example.com", None, None),
    ("Julia Rossi", "julia.rossi@example.it", "Family", None),
]
COLLEAGUES = [f"colleague{i}@work.example" for i in range(14)]

# Contacts as other address books write them: labelled dates become milestones (SPEC §5).
APPLE_LENA = """BEGIN:VCARD
VERSION:3.0
PRODID:-//Apple Inc.//macOS 14.5//EN
N:Vogel;Lena;;;
FN:Lena Vogel
EMAIL;type=INTERNET;type=WORK;type=pref:lena.vogel@example.de
item1.X-ABDATE;type=pref:2018-12-04
item1.X-ABLabel:work anniversary
item2.X-ABDATE:2023-05-02
item2.X-ABLabel:_$!<Other>!$_
END:VCARD
"""
EVOLUTION_OMAR = """BEGIN:VCARD
VERSION:3.0
UID:pas-id-6751A2B3000002
FN:Omar Said
N:Said;Omar;;;
EMAIL;TYPE=HOME:omar.said@example.com
X-EVOLUTION-FILE-AS:Said\\, Omar
X-EVOLUTION-ANNIVERSARY:2012-12-07
END:VCARD
"""
# Google Contacts' vCard export writes custom event types as Apple-style labelled dates.
GOOGLE_MIRA = """BEGIN:VCARD
VERSION:3.0
FN:Mira Jensen
N:Jensen;Mira;;;
EMAIL;TYPE=INTERNET;TYPE=HOME:mira.jensen@example.dk
item1.X-ABDATE:--12-06
item1.X-ABLabel:name day
END:VCARD
"""


def vcard(name: str, email: str, groups: str | None, bday: str | None) -> str:
    family, given = name.split()[-1], " ".join(name.split()[:-1])
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{email}", f"FN:{name}", f"N:{family};{given};;;", f"EMAIL;TYPE=INTERNET:{email}"]
    if groups:
        lines.append(f"CATEGORIES:{groups}")
    if bday:
        lines.append(f"BDAY:{bday}")
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


def event(uid: str, start: dt.datetime, minutes: int, summary: str, attendees: list[tuple[str, str]],
          extra: list[str] | None = None) -> str:
    fmt = "%Y%m%dT%H%M%S"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd example//EN", "BEGIN:VEVENT", f"UID:{uid}",
             "DTSTAMP:20261201T000000Z", f"DTSTART;TZID=Europe/Berlin:{start:{fmt}}",
             f"DTEND;TZID=Europe/Berlin:{start + dt.timedelta(minutes=minutes):{fmt}}", f"SUMMARY:{summary}"]
    if attendees:
        lines.append(f"ORGANIZER;CN=Alex Doe:mailto:{ME}")
        lines.append(f"ATTENDEE;CN=Alex Doe;PARTSTAT=ACCEPTED:mailto:{ME}")
    for email, partstat in attendees:
        lines.append(f"ATTENDEE;PARTSTAT={partstat}:mailto:{email}")
    lines += extra or []
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


def main() -> None:
    rng = random.Random(7)
    for sub in ("contacts", "calendars"):
        shutil.rmtree(ROOT / sub, ignore_errors=True)
    book = ROOT / "contacts" / "personal"
    book.mkdir(parents=True)
    for name, email, groups, bday in PEOPLE:
        (book / f"{email.split('@')[0]}.vcf").write_text(vcard(name, email, groups, bday), newline="")
    for file, text in (("lena.vogel", APPLE_LENA), ("omar.said", EVOLUTION_OMAR), ("mira.jensen", GOOGLE_MIRA)):
        (book / f"{file}.vcf").write_text(text.replace("\n", "\r\n"), newline="")
    personal = ROOT / "calendars" / "personal"
    work = ROOT / "calendars" / "work"
    personal.mkdir(parents=True)
    work.mkdir(parents=True)
    n = 0
    # A year of coffees and lunches; some people drift away in the second half.
    for name, email, _groups, _ in PEOPLE[:30]:
        visits = rng.randint(2, 9)
        fade = rng.random() < 0.4
        for _ in range(visits):
            days_ago = rng.randint(120 if fade else 8, 365)
            start = dt.datetime.combine(TODAY - dt.timedelta(days=days_ago), dt.time(rng.choice([9, 12, 13, 18]), 0))
            what = rng.choice(["Coffee", "Lunch", "Dinner", "Call"])
            n += 1
            (personal / f"ev{n:04d}.ics").write_text(
                event(f"ev{n:04d}@example", start, 60, f"{what} with {name.split()[0]}", [(email, "ACCEPTED")]),
                newline="")
    # Title-only entries (no attendees): matched by full name.
    for i, (days_ago, title) in enumerate([(20, "Lunch with Bob Stone"), (45, "Drinks with Ines Costa")]):
        start = dt.datetime.combine(TODAY - dt.timedelta(days=days_ago), dt.time(12, 30))
        (personal / f"title{i}.ics").write_text(event(f"title{i}@example", start, 90, title, []), newline="")
    # A weekly 1:1 with Eva, with one week moved and one cancelled.
    weekly = event("weekly-eva@example", dt.datetime(2026, 9, 7, 10, 0), 30, "1:1 Eva / Alex",
                   [("eva.novak@example.com", "ACCEPTED")], ["RRULE:FREQ=WEEKLY;COUNT=10", "EXDATE;TZID=Europe/Berlin:20260921T100000"])
    (work / "weekly-eva.ics").write_text(weekly, newline="")
    # An all-hands with too many people: counts for nobody.
    (work / "allhands.ics").write_text(event("allhands@example", dt.datetime(2026, 11, 20, 16, 0), 60, "All hands",
                                            [(c, "ACCEPTED") for c in COLLEAGUES] + [("hugo.martin@example.fr", "ACCEPTED")]), newline="")
    # Declined: does not count.
    (work / "declined.ics").write_text(event("declined@example", dt.datetime(2026, 11, 25, 15, 0), 60, "Vendor pitch",
                                            [("sam.lee@example.com", "ACCEPTED")]).replace(
        f"CN=Alex Doe;PARTSTAT=ACCEPTED:mailto:{ME}", f"CN=Alex Doe;PARTSTAT=DECLINED:mailto:{ME}"), newline="")
    # Someone new, met this week: a first_meeting follow-up.
    (work / "intro.ics").write_text(event("intro@example", dt.datetime(2026, 11, 30, 11, 0), 45, "Intro: Priya & Alex",
                                          [("priya.nair@startup.example", "ACCEPTED")]).replace(
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:priya", "ATTENDEE;CN=Priya Nair;PARTSTAT=ACCEPTED:mailto:priya"), newline="")
    # Climbing with Mira (in no group) every week or two until May: syncd learns the
    # usual gap and writes a catch-up when she has been quiet for twice as long.
    for i, days_ago in enumerate([250, 241, 234, 222, 213, 206, 197]):
        start = dt.datetime.combine(TODAY - dt.timedelta(days=days_ago), dt.time(18, 30))
        (personal / f"climb{i}.ics").write_text(event(f"climb{i}@example", start, 120, "Climbing",
                                                      [("mira.jensen@example.dk", "ACCEPTED")]), newline="")
    # A dinner already planned with Quinn: no catch-up task for Quinn.
    (personal / "planned.ics").write_text(event("planned@example", dt.datetime(2026, 12, 12, 19, 0), 120, "Dinner",
                                               [("quinn@taylor.example", "ACCEPTED")]), newline="")
    print(f"wrote {len(PEOPLE) + 3} contacts and {n + 15} calendar objects under {ROOT}")


if __name__ == "__main__":
    main()

"""The robustness corpus (/work/shared/corpus) through the real import path.

Rules (corpus README): never crash, hang or run out of memory; a malformed object is
skipped with a warning naming the file (and UID), its siblings are still read;
well-formed objects are read fully.

One ``syncd --backfill`` subprocess imports every file at once (one href per file),
which keeps the module fast; the checks per file run in-process on the same parsers.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from syncd import events, vcard
from syncd.errors import ParseError
from syncd.infer import ContactRecord, Occurrence

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
if not CORPUS.is_dir():
    pytest.skip(f"no corpus at {CORPUS}", allow_module_level=True)

ICS = sorted(p for p in (CORPUS / "ics").iterdir() if p.suffix.lower() in (".ics", ".vcs"))
VCF = sorted(p for p in (CORPUS / "vcf").iterdir() if p.suffix.lower() == ".vcf")
ZONE = zoneinfo.ZoneInfo("Europe/Berlin")
NOW = "2026-06-01T12:00:00Z"
#: 30 years, the window of the in-process expansion
START = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
#: seconds per file in-process ("never hang"); the largest file needs about 12 s
FILE_BOUND = 20
#: seconds for the one subprocess that imports the whole corpus (about 20 s here)
RUN_BOUND = 120

CONFIG = """\
[syncd]
me = ["me@example.org"]
timezone = "Europe/Berlin"
write_to = "files"
ledger = "state/ledger.sqlite3"

[accounts.files]
type = "vdir"
calendars = ["calendars/*"]
addressbooks = ["contacts/*"]
tasks = "state/followups"
"""


def _malformed() -> dict[str, str]:
    """``ics/NAME`` -> the "Malformed?" column of SOURCES.md (yes / partly / no)."""
    out = {}
    for line in (CORPUS / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 8 and re.fullmatch(r"`(ics|vcf)/[^`]+`", cells[1]):
            out[cells[1].strip("`")] = cells[7]
    return out


MALFORMED = _malformed()


def _rel(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _href(path: Path) -> str:
    # The vdir connector reads calendars as *.ics only: a vCalendar 1.0 .vcs gets ".ics" added.
    return path.name + ".ics" if path.suffix.lower() == ".vcs" else path.name


def _text(path: Path) -> str:
    return events.decode(path.read_bytes())


@contextmanager
def _bound(seconds: int, what: str) -> Iterator[None]:
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _expand_all(text: str) -> tuple[events.Parsed, dict[str, list[Occurrence]], dict[str, ParseError]]:
    """split + expand of every UID over 30 years: occurrences and errors by UID."""
    parsed = events.split(text)
    found: dict[str, list[Occurrence]] = {}
    errors: dict[str, ParseError] = {}
    for uid, comps in parsed.by_uid.items():
        try:
            occs, recurring = events.expand(uid, comps, parsed.timezones, START, END, ZONE)
        except ParseError as exc:
            errors[uid] = exc
            continue
        assert isinstance(recurring, bool)
        assert all(isinstance(o, Occurrence) for o in occs)
        found[uid] = occs
    return parsed, found, errors


def _skips_something(path: Path) -> bool:
    if path.parent.name == "vcf":
        return any(isinstance(item, ParseError) for item in vcard.parse(_text(path)))
    parsed, _, errors = _expand_all(_text(path))
    return bool(parsed.problems or errors)


# -- the whole corpus through `syncd --backfill` ----------------------------------
@pytest.fixture(scope="module")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """Every corpus file in one vdir (one calendar and one address-book folder)."""
    root = tmp_path_factory.mktemp("corpus-vdir")
    cal, book = root / "calendars" / "corpus", root / "contacts" / "corpus"
    cal.mkdir(parents=True)
    book.mkdir(parents=True)
    for path in ICS:
        shutil.copyfile(path, cal / _href(path))
    for path in VCF:
        shutil.copyfile(path, book / path.name)
    cfg = root / "config.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    env = {**os.environ, "SYNCD_NOW": NOW, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    env.pop("JOURNAL_STREAM", None)
    return subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(cfg), "--backfill", "--since", "2000-01-01"],
        capture_output=True, text=True, env=env, timeout=RUN_BOUND, cwd=root,
    )


def test_backfill_of_the_corpus_exits_0_without_traceback(backfill: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in backfill.stderr, backfill.stderr[-4000:]
    assert backfill.returncode == 0, backfill.stderr[-4000:]
    assert f"{len(ICS) + len(VCF)} changes, ok" in backfill.stdout, backfill.stdout


#: files broken on purpose where the parser does skip something (the others it repairs,
#: or loses silently: see test_truncated_event_is_reported)
SKIPPING = [p for p in ICS + VCF if MALFORMED.get(_rel(p)) == "yes" and _skips_something(p)]


@pytest.mark.parametrize("path", SKIPPING, ids=lambda p: p.name)
def test_a_skipped_object_is_named_in_a_warning(path: Path, backfill: subprocess.CompletedProcess[str]) -> None:
    href = _href(path)
    warnings = [line for line in backfill.stderr.splitlines() if "WARNING" in line]
    assert any(f": {href}: " in line for line in warnings), f"no warning names {href}"


def test_sources_md_covers_every_file() -> None:
    assert {_rel(p) for p in ICS + VCF} <= set(MALFORMED)


# -- in-process: never raise anything but ParseError, never hang ------------------
@pytest.mark.parametrize("path", ICS, ids=lambda p: p.name)
def test_calendar_file_splits_and_expands(path: Path) -> None:
    text = _text(path)
    with _bound(FILE_BOUND, path.name):
        parsed, found, errors = _expand_all(text)
    assert all(isinstance(p, str) for p in parsed.problems)
    assert set(found) | set(errors) == set(parsed.by_uid)
    for occs in found.values():
        assert len(occs) <= events.MAX_PER_SERIES


@pytest.mark.parametrize("path", VCF, ids=lambda p: p.name)
def test_vcard_file_parses(path: Path) -> None:
    with _bound(FILE_BOUND, path.name):
        items = list(vcard.parse(_text(path)))
    assert all(isinstance(i, ContactRecord | ParseError) for i in items), items


# -- targeted: siblings survive, well-formed data is read fully -------------------
def _load(name: str) -> tuple[events.Parsed, dict[str, list[Occurrence]], dict[str, ParseError]]:
    return _expand_all(_text(CORPUS / "ics" / name))


def _cards(name: str) -> list[ContactRecord | ParseError]:
    return list(vcard.parse(_text(CORPUS / "vcf" / name)))


def test_radicale_broken_vevents_keeps_the_good_event() -> None:
    _, found, errors = _load("Kozea__Radicale__broken-vevents.ics")
    good = found["040000008200E00074C5B7101A82E00800000000"]
    assert [o.summary for o in good] == ["Good ICS"]
    assert good[0].start == dt.datetime(2016, 7, 27, 15, 0, tzinfo=dt.timezone.utc)  # 17:00 Budapest (CEST)
    assert set(errors) == {"040000008200E00074C5B7101A82E00800000001"}


def test_late_errors_do_not_take_the_valid_events_down() -> None:
    parsed, found, errors = _load("jens-maus__node-ical__large-file-with-late-error.ics")
    assert sum(len(v) for v in found.values()) >= 394
    assert len(parsed.problems) + len(errors) >= 6  # the impossible dates, reported
    assert all(f"event{n:03d}@example.com" in found for n in (1, 100, 399, 400))


def test_cancelled_override_of_a_series() -> None:
    _, found, _ = _load("pimutils__khal__event_rrule_recuid_cancelled.ics")
    (occs,) = found.values()
    assert any(o.cancelled for o in occs) and any(not o.cancelled for o in occs)
    assert len({o.recurrence_id for o in occs}) == len(occs)


def test_attendee_parameters_are_read() -> None:
    _, found, _ = _load("pimutils__khal__event_dt_partstat.ics")
    (occs,) = found.values()
    stats = {a.partstat for a in occs[0].attendees}
    assert len(occs[0].attendees) >= 5 and {"ACCEPTED", "TENTATIVE"} <= stats


def test_unbounded_daily_series_is_cut() -> None:
    # RRULE UNTIL=70060101: 30 years of a daily series are cut at MAX_PER_SERIES; the
    # latest occurrences are kept, since recent meetings matter most.
    _, found, _ = _load("Kozea__Radicale__event_full_day_rrule_until_5000y.ics")
    (occs,) = found.values()
    assert len(occs) == events.MAX_PER_SERIES
    assert occs[-1].start.date() == END.date() - dt.timedelta(days=1)  # the window's last day


def test_grouped_email_is_read() -> None:
    (gmail,) = _cards("mangstadt__ez-vcard__gmail-single2.vcf")
    assert isinstance(gmail, ContactRecord)
    assert "customcategory@example.com" in gmail.emails  # item1.EMAIL
    assert len(gmail.emails) == 5
    (iphone,) = _cards("mangstadt__ez-vcard__John_Doe_IPHONE.vcf")  # CR CR LF, item1.EMAIL
    assert isinstance(iphone, ContactRecord) and iphone.emails == ("john.doe@ibm.com",)


def test_uppercase_group_and_categories() -> None:
    (card,) = _cards("kewisch__ical.js__escape_semicolon.vcf")
    assert isinstance(card, ContactRecord) and card.emails == ("home@gmx.de", "work@gmx.de")


@pytest.mark.parametrize(
    ("name", "fn", "email"),
    [
        ("mangstadt__ez-vcard__John_Doe_MS_OUTLOOK.vcf", "Mr. John Richter James Doe Sr.", "john.doe@ibm.cm"),
        ("mangstadt__ez-vcard__outlook-2003.vcf", "John Doe III", "jdoe@hotmail.com"),
    ],
)
def test_vcard21_quoted_printable_outlook(name: str, fn: str, email: str) -> None:
    (card,) = _cards(name)
    assert isinstance(card, ContactRecord) and card.name == fn and email in card.emails


def test_vcard21_quoted_printable_names_are_decoded() -> None:
    cards = _cards("mangstadt__ez-vcard__John_Doe_ANDROID.vcf")
    names = [c.name for c in cards if isinstance(c, ContactRecord) and c.name]
    assert "Ñ Ñ Ñ Ñ Ñ" in names  # FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE


def test_vcard21_android_export_is_read_fully() -> None:
    # Cards 5 and 6 have a broken PHOTO / a non-UTF-8 ORG: those properties are dropped
    # with a warning, the rest of the card (the email) is kept.
    cards = _cards("mangstadt__ez-vcard__John_Doe_ANDROID.vcf")
    problems = [c for c in cards if not isinstance(c, ContactRecord)]
    assert len(problems) == 2 and all("unreadable properties dropped" in str(p) for p in problems)
    emails = {e for c in cards if isinstance(c, ContactRecord) for e in c.emails}
    assert {"bob@company.com", "henry@company.com"} <= emails


def test_vcard21_quoted_printable_structured_values() -> None:
    cards = _cards("KDE__kcontacts__vcard10.vcf")
    assert all(isinstance(c, ContactRecord) for c in cards)
    assert "Dr. med. Surname Name" in {c.name for c in cards if isinstance(c, ContactRecord)}


def test_folding_inside_utf8_sequences() -> None:
    (card,) = _cards("KDE__kcontacts__vcard9.vcf")
    assert isinstance(card, ContactRecord) and card.name and card.name.startswith("βγδεαβγδ1")


def test_broken_vcards_keep_the_good_one() -> None:
    cards = _cards("Kozea__Radicale__broken-vcards2.vcf")
    good = [c for c in cards if isinstance(c, ContactRecord) and c.name == "Test Example"]
    assert good and good[0].emails == ("test-misses-n-or-fn@example.com",)


def test_free_text_birthday_is_a_parse_error_not_a_crash() -> None:
    assert all(isinstance(c, ParseError) for c in _cards("lucc__khard__text-bday.vcf"))


@pytest.mark.parametrize("name", ["Kozea__Radicale__event_issue2172.ics", "jens-maus__node-ical__test_with_int_tzid.ics"])
def test_zone_defined_in_the_file_is_used(name: str) -> None:
    _, _, errors = _load(name)
    assert not errors, errors


@pytest.mark.parametrize(("name", "complete"), [("Kozea__Radicale__broken-vevent.ics", 0),
                                                ("ical4j__ical4j__13-MoonPhase.ics", 41)])
def test_truncated_event_is_reported(name: str, complete: int) -> None:
    parsed, found, _ = _load(name)
    assert parsed.problems, "the truncated VEVENT is dropped without a warning"
    assert len(found) >= complete

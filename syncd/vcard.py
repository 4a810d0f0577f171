"""vCards to contact records (vobject), leniently: a bad card is skipped, not fatal."""

from __future__ import annotations

import re
from collections.abc import Iterator

import vobject

from syncd.errors import ParseError
from syncd.events import _clean
from syncd.model import ContactRecord, Milestone, PartialDate

_DATE = re.compile(r"^(?:(\d{4})|--)-?(\d{2})-?(\d{2})(?:T.*)?$")
_CARD = re.compile(r"^BEGIN:VCARD\r?$.*?^END:VCARD\r?$", re.M | re.S | re.I)


def partial_date(text: str) -> PartialDate | None:
    """``YYYY-MM-DD``, ``YYYYMMDD``, ``--MMDD`` or ``--MM-DD`` (a time part is ignored).

    Raises:
        ParseError: the text is not such a date, or names an impossible day.
    """
    m = _DATE.match(text.strip())
    if not m:
        raise ParseError(f"unreadable date {text!r}")
    year = int(m.group(1)) if m.group(1) else None
    month, day = int(m.group(2)), int(m.group(3))
    import datetime as dt

    try:
        dt.date(year if year and year > 0 else 2000, month, day)  # 2000: leap, so 29 Feb is fine
    except ValueError:
        raise ParseError(f"impossible date {text!r}") from None
    if year == 1604:  # Apple's placeholder for "no year"
        year = None
    return PartialDate(month=month, day=day, year=year)


def _values(card: vobject.base.Component, name: str) -> list[str]:
    out: list[str] = []
    for line in card.contents.get(name, []):
        value = line.value
        if isinstance(value, list):
            out.extend(str(v) for v in value)
        elif value is not None:
            out.append(str(value))
    return [v.strip() for v in out if str(v).strip()]


def _name(card: vobject.base.Component) -> str | None:
    fn = _values(card, "fn")
    if fn:
        return fn[0]
    for line in card.contents.get("n", []):
        n = line.value
        parts = [getattr(n, "given", ""), getattr(n, "additional", ""), getattr(n, "family", "")]
        joined = " ".join(" ".join(p) if isinstance(p, list) else str(p) for p in parts if p).strip()
        if joined:
            return joined
    return None


#: vCard 3.0 has no ANNIVERSARY; these stand for it (Evolution, KAddressBook, others)
ANNIVERSARY_PROPS = ("anniversary", "x-anniversary", "x-evolution-anniversary", "x-kaddressbook-x-anniversary")
_APPLE_LABEL = re.compile(r"^_\$!<(.*)>!\$_$")


def _apple_dates(card: vobject.base.Component) -> tuple[list[str], list[tuple[str, str]]]:
    """Apple's ``itemN.X-ABDATE`` with the ``itemN.X-ABLabel`` of its group.

    Returns the anniversaries (label ``_$!<Anniversary>!$_``) and the other labelled
    dates as (label, date); ``_$!<Other>!$_`` and unlabelled dates are skipped.
    """
    labels = {line.group.lower(): str(line.value).strip()
              for line in card.contents.get("x-ablabel", []) if line.group and line.value}
    anniversaries, others = [], []
    for line in card.contents.get("x-abdate", []):
        label = labels.get((line.group or "").lower(), "")
        value = str(line.value or "").strip()
        builtin = _APPLE_LABEL.match(label)
        if not value or not label or (builtin and builtin.group(1).casefold() == "other"):
            continue
        if builtin and builtin.group(1).casefold() == "anniversary":
            anniversaries.append(value)
        else:
            others.append((builtin.group(1) if builtin else label, value))
    return anniversaries, others


def record(card: vobject.base.Component, order: tuple[int, ...]) -> ContactRecord:
    """One parsed vCard as a record. Raises ParseError for impossible dates."""
    emails = tuple(sorted({e.lower().removeprefix("mailto:") for e in _values(card, "email") if "@" in e}))
    nicks = tuple(n for v in _values(card, "nickname") for n in (x.strip() for x in v.split(",")) if n)
    groups = tuple(sorted({g for v in _values(card, "categories") for g in (x.strip() for x in v.split(",")) if g}))
    bday = _values(card, "bday")
    apple_anniv, labelled = _apple_dates(card)
    anniv = next((v for p in ANNIVERSARY_PROPS if (v := _values(card, p))), apple_anniv)
    uid = _values(card, "uid")
    return ContactRecord(
        name=_name(card),
        emails=emails,
        nicknames=nicks,
        groups=groups,
        birthday=partial_date(bday[0]) if bday else None,
        anniversary=partial_date(anniv[0]) if anniv else None,
        order=order,
        ref=f"uid:{uid[0]}" if uid else "",
        milestones=tuple(Milestone(label, d) for label, value in labelled if (d := partial_date(value))),
    )


_NEEDED = re.compile(
    r"^(?:[\w-]+\.)?(BEGIN|END|VERSION|UID|FN|N|EMAIL|NICKNAME|CATEGORIES|BDAY|ANNIVERSARY|X-ANNIVERSARY"
    r"|X-EVOLUTION-ANNIVERSARY|X-KADDRESSBOOK-X-ANNIVERSARY|X-ABDATE|X-ABLABEL)[;:]", re.I
)


def _needed_only(block: str) -> str:
    """The card with only the properties syncd reads (a broken PHOTO or ORG must not
    cost the person's email)."""
    unfolded = re.sub(r"\r?\n[ \t]", "", block)
    # vCard 2.1 quoted-printable soft breaks: "=" at the end of a line continues it.
    unfolded = re.sub(r"=\r?\n", "", unfolded) if "QUOTED-PRINTABLE" in unfolded.upper() else unfolded
    return "\r\n".join(line for line in unfolded.splitlines() if _NEEDED.match(line)) + "\r\n"


def _read(block: str, order: tuple[int, ...]) -> Iterator[ContactRecord]:
    for card in vobject.readComponents(block, allowQP=True):
        if card.name.upper() == "VCARD":
            yield record(card, order)


def parse(text: str, order: tuple[int, ...] = (0,)) -> Iterator[ContactRecord | ParseError]:
    """Every card of ``text``: a record, or the ParseError of a card that is unreadable."""
    text = _clean(text)
    blocks = [m.group(0) for m in _CARD.finditer(text)] or [text]
    for block in blocks:
        try:
            yield from list(_read(block, order))
            continue
        except ParseError as exc:
            yield exc
            continue
        except Exception as exc:
            first = exc
        uid = re.search(r"^UID:(.*)$", block, re.M)
        where = f"UID {uid.group(1).strip()}: " if uid else ""
        try:
            yield from list(_read(_needed_only(block), order))
            # still report it: something the user wrote could not be read
            yield ParseError(f"{where}unreadable properties dropped ({type(first).__name__}: {first})")
        except Exception as exc:
            yield ParseError(f"{where}{type(exc).__name__}: {exc}")

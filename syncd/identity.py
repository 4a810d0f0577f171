"""Who is who across passes: stable person ids while records change (SPEC §4).

Public API: ``Identity`` (what the ledger remembers) and ``assign`` (give this
pass's clusters their ids).

A pass's inference groups contact records into clusters by shared addresses. The
ledger remembers, for every record and every address, the id of the person it last
belonged to (``links``), and which ids were merged into which (``merged``). A cluster
takes the id its records point to (records are the strongest evidence: a card keeps
its UID while its name and addresses change), else the id its addresses point to, else
a new one. So:

- a changed, added or removed address, a rename, or a card moved to another address
  book keeps the id (the card's link); an address the card no longer lists keeps
  pointing at the person, so meetings at it stay in their history;
- two people who now share an address are one: the older id absorbs the newer one,
  which is remembered as merged (its follow-ups stay the merged person's);
- a cluster that splits: each part takes back the id its own records point to (a
  merged id comes back to life), a part with no claim left gets a new id.

Ids are the person's first natural key (first address, or ``name:...``) when it was
first seen, so a ledger from before ids existed keeps every follow-up's owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


def email_link(address: str) -> str:
    """The link key of an address."""
    return f"email:{address}"


def record_link(ref: str) -> str:
    """The link key of an address-book record."""
    return f"record:{ref}"


@dataclass
class Identity:
    """What the ledger remembers: link -> id, merged id -> id, ids in creation order."""

    links: dict[str, str] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def canonical(self, pid: str) -> str:
        """Follow merges to the id that stands for ``pid`` now."""
        seen = {pid}
        while pid in self.merged and self.merged[pid] not in seen:
            pid = self.merged[pid]
            seen.add(pid)
        return pid

    def groups(self) -> dict[str, set[str]]:
        """Canonical id -> every id that stands for it (itself and what merged into it)."""
        out: dict[str, set[str]] = {}
        for pid in [*self.ids, *self.merged]:
            out.setdefault(self.canonical(pid), set()).add(pid)
        return out

    def copy(self) -> Identity:
        """An independent copy."""
        return Identity(dict(self.links), dict(self.merged), list(self.ids))


@dataclass
class Claim:
    """One cluster of this pass: its record refs, its addresses and its natural key."""

    refs: tuple[str, ...]
    emails: tuple[str, ...]
    natural: str


class Assigner:
    """Gives clusters ids, in the order they are offered; see the module docstring."""

    def __init__(self, known: Identity) -> None:
        self.known = known
        self.out = known.copy()
        self.taken: dict[str, int] = {}  # id -> claim index
        self.claims: list[Claim] = []
        self._seq = {pid: i for i, pid in enumerate(known.ids)}

    def _order(self, pid: str) -> tuple[bool, int, str]:
        # Prefer a live id over a merged one, then the oldest.
        return (pid in self.known.merged, self._seq.get(pid, len(self._seq)), pid)

    def _free(self, ids: Iterable[str]) -> list[str]:
        return sorted((i for i in set(ids) if i not in self.taken), key=self._order)

    def record_ids(self, claim: Claim) -> set[str]:
        """Ids this cluster's records point to (as stored, not followed through merges)."""
        return {self.known.links[k] for r in claim.refs if (k := record_link(r)) in self.known.links}

    def email_ids(self, claim: Claim) -> set[str]:
        """Ids this cluster's addresses point to, followed through merges."""
        return {self.known.canonical(self.known.links[k]) for e in claim.emails
                if (k := email_link(e)) in self.known.links}

    def by_records(self, claim: Claim) -> str | None:
        """Phase 1: take an id the cluster's records point to, if one is free."""
        free = self._free(self.record_ids(claim))
        return self._take(claim, free[0]) if free else None

    def by_emails(self, claim: Claim) -> str:
        """Phase 2: an id the addresses point to, else the natural key, else a new one."""
        free = self._free(self.email_ids(claim))
        return self._take(claim, free[0] if free else self._new(claim.natural))

    def origins(self, claim: Claim, pid: str) -> frozenset[str]:
        """Ids this cluster's addresses pointed to that another cluster took: a split.

        The part that split off was met as that person: it has been followed up.
        """
        return frozenset(i for i in self.email_ids(claim) if i != pid and i in self.taken)

    def replay(self, claim: Claim, pid: str) -> None:
        """Take ``pid`` for ``claim`` as an earlier run of this assigner, from the same
        identity, did (a directory rebuilt from what it stored)."""
        self._take(claim, pid)

    def _new(self, natural: str) -> str:
        pid, n = natural, 1
        while pid in self.taken:
            n += 1
            pid = f"{natural}~{n}"
        return pid

    def _take(self, claim: Claim, pid: str) -> str:
        self.taken[pid] = len(self.claims)
        self.claims.append(claim)
        self.out.merged.pop(pid, None)  # a merged id that is claimed again lives again
        if pid not in self._seq:
            self._seq[pid] = len(self._seq)
            self.out.ids.append(pid)
        return pid

    def finish(self, held: Iterable[str] = ()) -> Identity:
        """Record merges and links of this pass; the new identity to store.

        ``held``: ids that people this pass did not assign keep (someone known by one
        address, derived in an earlier pass and untouched since): never merged away.
        """
        held = set(held)
        for pid, idx in self.taken.items():
            claim = self.claims[idx]
            for other in self.record_ids(claim) | self.email_ids(claim):
                if other != pid and other not in self.taken and other not in held:
                    self.out.merged[other] = pid
            for ref in claim.refs:
                self.out.links.setdefault(record_link(ref), pid)
            for email in claim.emails:
                self.out.links[email_link(email)] = pid
        return self.out

    def historical(self, current: set[str]) -> dict[str, str]:
        """Addresses no current record lists that still point to a person of this pass."""
        out = {}
        for key, pid in self.known.links.items():
            if key.startswith("email:") and key[6:] not in current:
                canon = self.known.canonical(pid)
                if canon in self.taken:
                    out[key[6:]] = canon
        return out

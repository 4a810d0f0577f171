"""Local folders of .ics and .vcf files (vdir, as khal, khard, vdirsyncer and todoman keep them).

A vdir is a folder with one item per file. The etag of a file is its mtime (ns) and
size: a pass with no change lists and stats the folders and reads no file. Follow-ups
are written one VTODO per file named ``<uid>.ics``: created with an exclusive link so
a rerun never overwrites or duplicates, replaced atomically (temp file + rename).

A pass with no change need not read the ledger's etags either. When a listing finds
nothing to change, it notes so in the connector state (``settled``: kind and folder ->
a digest of the listing's names, mtimes and sizes, and how many files it has); the core
commits the state with the end of that listing. A listing that does change something
removes the note before its first batch, and the removal commits with that batch; once
its last batch is in, and it read every changed file, it notes its own listing, which
commits with the end of the listing. So while the folder lists the same digest and the
ledger holds as many objects as the folder has files (``len(known)``, which the core
answers with a count), the ledger holds exactly this listing: nothing is compared and
nothing is read. The count also guards the one case where a listing ends before its
batches are in: deletions alone, which the core holds back until the listing ends (see
``_believed``). A lost state only costs one full comparison.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import hashlib
import logging
import os
import re
import stat
import tempfile
from array import array
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from syncd.config import expanded_path
from syncd.paths import private_dir
from syncd_connectors.base import (
    CONTACTS,
    EVENTS,
    AccountError,
    ChangeBatch,
    Changes,
    Collection,
    ContactSource,
    EventSource,
    Invalid,
    Option,
    PreconditionFailed,
    RawObject,
    RemoteTask,
    TaskSink,
    TaskSpec,
    absent,
    cancelled_task_ical,
    choice,
    read_task_ical,
    task_ical,
)

log = logging.getLogger(__name__)

BATCH = 200
_TMP = ".syncd-"


def _etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}-{st.st_size}"


_SETTLED = "settled"
_KEPT = b"syncd vdir listing 1\n"


class _Listing:
    """The items of a folder, in the order the folder lists them: names, mtimes (ns)
    and sizes, kept apart so that a pass with no change builds no string per file."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.mtimes: list[int] = []
        self.sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.names)

    def etags(self) -> dict[str, str]:
        """file name -> etag."""
        return {n: f"{m}-{s}" for n, m, s in zip(self.names, self.mtimes, self.sizes, strict=True)}

    def against(self, kept: _Listing) -> tuple[dict[str, str], list[str]]:
        """What changed since ``kept``: name -> etag of the files new or changed, and
        the names gone."""
        if self.names == kept.names:  # the usual case, compared in order
            return {n: f"{m}-{s}" for n, m, s, m0, s0 in zip(self.names, self.mtimes, self.sizes, kept.mtimes,
                                                             kept.sizes, strict=True) if m != m0 or s != s0}, []
        old = dict(zip(kept.names, zip(kept.mtimes, kept.sizes, strict=True), strict=True))
        now = {n: f"{m}-{s}" for n, m, s in zip(self.names, self.mtimes, self.sizes, strict=True)
               if old.get(n) != (m, s)}
        return now, sorted(set(kept.names).difference(self.names))

    def dump(self) -> bytes:
        """The listing as ``load`` reads it back."""
        names = "\0".join(self.names).encode("utf-8", "surrogateescape")
        return b"".join((_KEPT, len(self.names).to_bytes(8, "little"), len(names).to_bytes(8, "little"), names,
                         array("q", self.mtimes).tobytes(), array("q", self.sizes).tobytes()))

    @classmethod
    def load(cls, data: bytes) -> _Listing:
        """A dumped listing (ValueError: not one)."""
        if not data.startswith(_KEPT):
            raise ValueError("not a kept listing")
        at = len(_KEPT)
        count, size = int.from_bytes(data[at:at + 8], "little"), int.from_bytes(data[at + 8:at + 16], "little")
        at += 16
        out = cls()
        out.names = data[at:at + size].decode("utf-8", "surrogateescape").split("\0") if count else []
        at += size
        for column in (out.mtimes, out.sizes):
            values = array("q")
            values.frombytes(data[at:at + 8 * count])
            column.extend(values)
            at += 8 * count
        if not (len(out.names) == len(out.mtimes) == len(out.sizes) == count) or at != len(data):
            raise ValueError("a kept listing cut short")
        return out

    def digest(self) -> str:
        """A digest of every name and etag (another order is another digest: then
        the folder is only compared in full)."""
        h = hashlib.blake2b(digest_size=16)
        h.update("\0".join(self.names).encode("utf-8", "surrogateescape"))
        try:
            h.update(array("q", self.mtimes).tobytes())
            h.update(array("q", self.sizes).tobytes())
        except OverflowError:  # an mtime past 2262
            h.update(repr((self.mtimes, self.sizes)).encode())
        return h.hexdigest()


_BY_FD = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")


def _scan(folder: Path, suffix: str) -> dict[str, str]:
    """file name -> etag of the items of a folder (hidden and temporary files skipped)."""
    return _list(folder, suffix).etags()


def _list(folder: Path, suffix: str) -> _Listing:
    """The items of a folder (hidden and temporary files skipped)."""
    out = _Listing()
    names, mtimes, sizes = out.names.append, out.mtimes.append, out.sizes.append
    # Listed through the folder's descriptor where the system allows it: each stat then
    # looks up one name in the folder, not the whole path again (10% of a listing).
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if _BY_FD else None
    try:
        # A pass with no change is this loop: one stat per file, nothing else per entry.
        with os.scandir(folder if fd is None else fd) as it:
            for entry in it:
                name = entry.name
                if name[0] == "." or not (name.endswith(suffix) or name.lower().endswith(suffix)):
                    continue
                try:
                    st = entry.stat()  # follows a link, as is_file() would
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    names(name)
                    mtimes(st.st_mtime_ns)
                    sizes(st.st_size)
    finally:
        if fd is not None:
            os.close(fd)
    return out


def _read(path: Path) -> str:
    # The parsers load only when a file is read: a pass with no change reads none.
    from syncd import events

    return events.decode(path.read_bytes())


def _write_new(folder: Path, name: str, text: str) -> bool:
    """Create ``folder/name`` atomically; False when it already exists."""
    tmp = folder / f"{_TMP}{name}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, folder / name)  # fails if the target exists: no overwrite, no race
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


_UNSET_VAR = re.compile(r"\$(\w+|\{\w+\})")


def _expanded(value: Any) -> Path:
    """A folder with ``$VAR``/``${VAR}`` and ``~`` expanded."""
    return expanded_path(_parse_path(value))


def _expanded_list(value: Any) -> list[Path]:
    return [expanded_path(p) for p in _parse_path_list(value)]


def _parse_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty string (a folder)")
    return value


def _parse_path_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid("a list of folders (non-empty strings, globs allowed)")
    return list(value)


class VdirConnector(EventSource, ContactSource, TaskSink):
    """Reads calendars and address books from folders; writes follow-ups into one."""

    options: ClassVar[dict[str, Option]] = {
        "calendars": Option(_expanded_list, [], "folders (globs, $VARS and ~ expanded) of .ics files"),
        "addressbooks": Option(_expanded_list, [], "folders (globs, $VARS and ~ expanded) of .vcf files"),
        "tasks": Option(_expanded, None, "the folder follow-ups are written into; created if missing"),
        "tasks_as": Option(choice("todo", "event"), "todo", '"todo" (VTODO) or "event" (all-day VEVENT)'),
    }
    secret_kind = None  # local folders need no password

    def __init__(self, name: str, options: Mapping[str, Any], ctx: Any) -> None:
        super().__init__(name, options, ctx)
        self.task_dir: Path | None = self.opts.get("tasks")

    def _folders(self, key: str, patterns: list[Any] | None = None) -> list[Path]:
        found: list[Path] = []
        for pattern in self.opts.get(key) or [] if patterns is None else patterns:
            matches = sorted(glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [str(pattern)]
            for m in matches:
                p = Path(m)
                if p.is_dir() and p not in found and (self.task_dir is None or p.resolve() != self.task_dir.resolve()):
                    found.append(p)
        return found

    def collections(self) -> list[Collection]:
        """The configured folders; a folder named but missing is an account error."""
        out = []
        for key, kind in (("calendars", EVENTS), ("addressbooks", CONTACTS)):
            for pattern in self.opts.get(key) or []:
                var = _unset_var(Path(pattern))
                if var:
                    raise AccountError(f"{key}: {pattern}: the environment variable {var} is not set")
                if not glob.has_magic(str(pattern)) and not Path(pattern).is_dir():
                    raise AccountError(f"folder {pattern} does not exist")
                # A glob that matched folders and now matches none is most likely an
                # unmounted disk: failing keeps the ledger's history of those folders.
                if glob.has_magic(str(pattern)) and not self._folders(key, [pattern]):
                    raise AccountError(f"{key}: {pattern} matches no folder")
            out += [Collection(id=str(p.absolute()), name=p.name, kind=kind) for p in self._folders(key)]
        return out

    def changes(
        self, collection: Collection, cursor: str | None, known: Mapping[str, str], since: dt.datetime
    ) -> Changes:
        """Files whose mtime or size changed, and files gone since the ledger saw them
        (the scan is the whole folder: no cursor is kept; see the module docstring for
        the ``settled`` note that spares comparing an unchanged folder)."""
        folder = Path(collection.id)
        try:
            listing = _list(folder, ".ics" if collection.kind == EVENTS else ".vcf")
        except OSError as exc:
            raise AccountError(f"cannot list {folder}: {exc.strerror}") from None
        was = self.ctx.state(_SETTLED) or {}
        key = f"{collection.kind}:{collection.id}"  # one folder may be a calendar and an address book
        note = [listing.digest(), len(listing)]
        last = was.get(key)
        if last == note and len(known) == len(listing):
            return None
        # While the ledger holds the listing ``last`` notes, the listing kept with it
        # tells what changed without reading the ledger.
        kept = self._kept(key, last[0]) if last is not None and len(known) == last[1] else None
        if kept is not None:
            now, deletes = listing.against(kept)
        else:
            now = listing.etags()
            now, deletes = dict(now.items() - known.items()), absent(known, now)
        changed = sorted(now)
        settled = {k: v for k, v in was.items() if k != key}  # stored with the first batch
        if not (changed or deletes):
            settled[key] = note  # stored with the end of this listing
            self._keep(key, listing)
        if settled != was:
            self.ctx.set_state(_SETTLED, settled)
        batch = ChangeBatch(deletes=deletes, total=len(changed))
        whole = True  # every changed file was read: the ledger will hold this listing
        for name in changed:
            try:
                batch.upserts.append(RawObject(href=name, etag=now[name], data=_read(folder / name)))
            except FileNotFoundError:
                whole = False  # removed while we listed: the next pass sees it gone
                continue
            except OSError as exc:
                whole = False
                log.warning("account %s: %s: cannot read: %s", self.name, folder / name, exc.strerror)
            if len(batch.upserts) >= BATCH:
                yield batch
                batch = ChangeBatch()
        if batch.upserts or batch.deletes:
            yield batch
        if whole and settled.get(key) != note:
            # The core commits this state with the last batch (it may read ahead) or
            # with the end of the listing: never before every batch is in, and the next
            # pass starts settled. A kept listing whose note did not commit is not used.
            self.ctx.set_state(_SETTLED, {**settled, key: note})
            self._keep(key, listing)
        return None

    def _kept_path(self, key: str) -> Path | None:
        cache = self.ctx.cache
        if cache is None:
            return None
        name = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()
        return cache / f"vdir-{name}.listing"

    def _forget_unlisted(self, folder: Path) -> None:
        """Remove the kept listings of folders no longer configured (one stays behind
        for each folder ever listed otherwise)."""
        wanted = {self._kept_path(f"{kind}:{p.absolute()}")
                  for key, kind in (("calendars", EVENTS), ("addressbooks", CONTACTS)) for p in self._folders(key)}
        for path in folder.glob("vdir-*.listing"):
            if path not in wanted:
                path.unlink(missing_ok=True)

    def _keep(self, key: str, listing: _Listing) -> None:
        """Keep ``listing`` in the account's cache (written whole or not at all; a
        cache that cannot be written only costs comparisons with the ledger)."""
        path = self._kept_path(key)
        if path is None:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            data = listing.dump()
            private_dir(path.parent)
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
            self._forget_unlisted(path.parent)
        except (OSError, OverflowError) as exc:  # OverflowError: an mtime past 2262
            log.debug("account %s: cannot keep the listing of %s: %s", self.name, key, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _kept(self, key: str, digest: str) -> _Listing | None:
        """The kept listing of ``key`` if it is the one of ``digest`` (the settled note)."""
        path = self._kept_path(key)
        if path is None:
            return None
        try:
            kept = _Listing.load(path.read_bytes())
        except (OSError, ValueError):
            return None
        return kept if kept.digest() == digest else None

    # -- task sink -------------------------------------------------------------
    def _tasks(self) -> Path:
        if self.task_dir is None:
            raise AccountError("no `tasks` folder configured to write follow-ups into")
        try:
            self.task_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AccountError(f"cannot create {self.task_dir}: {exc.strerror}") from None
        return self.task_dir

    def list_tasks(self) -> dict[str, RemoteTask]:
        """Tasks in the folder that syncd wrote; only changed files are read (a read:
        a missing folder holds no tasks and is not created here)."""
        if self.task_dir is not None and not self.task_dir.exists():
            return {}
        folder = self._tasks()
        for leftover in folder.glob(f"{_TMP}*.tmp"):
            leftover.unlink(missing_ok=True)  # a write interrupted by a crash
        cache: dict[str, Any] = self.ctx.state("tasks") or {}
        fresh: dict[str, Any] = {}
        for name, tag in _scan(folder, ".ics").items():
            entry = cache.get(name)
            if entry is None or entry[0] != tag:
                try:
                    task = read_task_ical(_read(folder / name))
                except OSError:
                    continue
                entry = [tag, None if task is None else [task.uid, task.completed, _iso(task.completed_at),
                                                         task.cancelled, task.due.isoformat() if task.due else None]]
            fresh[name] = entry
        self.ctx.set_state("tasks", fresh)
        out = {}
        for _, t in fresh.values():
            if t is not None:
                due = t[4] if len(t) > 4 else None  # entries cached before dues were read have none
                out[t[0]] = RemoteTask(t[0], t[1], dt.datetime.fromisoformat(t[2]) if t[2] else None, t[3],
                                       dt.date.fromisoformat(due) if due else None)
        return out

    def put_task(self, task: TaskSpec) -> None:
        """Write ``<uid>.ics`` unless it exists."""
        text = task_ical(task, as_event=self.opts.get("tasks_as") == "event")
        _write_new(self._tasks(), f"{task.uid}.ics", text)

    def cancel_task(self, uid: str) -> None:
        """Set STATUS:CANCELLED, keeping the rest of the file (the user's edits)."""
        folder = self._tasks()
        path = folder / f"{uid}.ics"
        for _ in range(3):
            try:
                before = path.stat()
                text = cancelled_task_ical(_read(path))
            except FileNotFoundError:
                return  # the user deleted it meanwhile
            if text is None:
                return
            tmp = folder / f"{_TMP}{uid}.tmp"
            tmp.write_text(text, encoding="utf-8", newline="")
            # If-Match for files: replace only what we read.
            if _etag(path.stat()) == _etag(before):
                os.replace(tmp, path)
                return
            tmp.unlink(missing_ok=True)
        raise PreconditionFailed(f"{path} keeps changing; will retry")

    def check(self) -> list[str]:
        """What the folders hold."""
        cols = self.collections()
        lines = [f"{sum(c.kind == EVENTS for c in cols)} calendar folders, "
                 f"{sum(c.kind == CONTACTS for c in cols)} address-book folders"]
        if self.task_dir is not None:
            lines.append(f"follow-ups go to {self.task_dir}")
        return lines

    def problems(self) -> list[str]:
        """What would make this account useless: globs matching nothing, empty folders,
        parents of collections, unset ``$VARS``, a tasks folder that cannot be written."""
        out: list[str] = []
        for key, suffix in (("calendars", ".ics"), ("addressbooks", ".vcf")):
            for pattern in self.opts.get(key) or []:
                out += _pattern_problems(key, Path(pattern), suffix, self.task_dir)
        if self.task_dir is not None:
            out += _tasks_problems(self.task_dir)
        return out


def _unset_var(path: Path) -> str | None:
    m = _UNSET_VAR.search(str(path))
    return m.group(0) if m else None


def _pattern_problems(key: str, pattern: Path, suffix: str, task_dir: Path | None) -> list[str]:
    var = _unset_var(pattern)
    if var:
        return [f"{key}: {pattern}: the environment variable {var} is not set"]
    text = str(pattern)
    if glob.has_magic(text):
        matches = [Path(m) for m in sorted(glob.glob(text)) if Path(m).is_dir()]
        if task_dir is not None:
            matches = [m for m in matches if m.resolve() != task_dir.resolve()]
        if not matches:
            return [f"{key}: {pattern} matches no folder"]
    elif not pattern.is_dir():
        return [f"{key}: folder {pattern} does not exist"]
    else:
        matches = [pattern]
    out = []
    for folder in matches:
        try:
            if _scan(folder, suffix):
                continue
            subs = sorted(p.name for p in folder.iterdir()
                          if p.is_dir() and not p.name.startswith(".") and _has_items(p, suffix))
        except OSError as exc:
            out.append(f"{key}: cannot list {folder}: {exc.strerror}")
            continue
        if subs:
            shown = ", ".join(subs[:5]) + (", ..." if len(subs) > 5 else "")
            out.append(f"{key}: {folder} holds no {suffix} files but its subfolders do ({shown}): "
                       f'did you mean "{folder}/*"?')
        else:
            out.append(f"{key}: {folder} holds no {suffix} files")
    return out


def _has_items(folder: Path, suffix: str) -> bool:
    try:
        return bool(_scan(folder, suffix))
    except OSError:
        return False


def _tasks_problems(folder: Path) -> list[str]:
    """Probe the tasks folder: it exists and takes a file, or it can be created."""
    var = _unset_var(folder)
    if var:
        return [f"tasks: {folder}: the environment variable {var} is not set"]
    if folder.exists():
        if not folder.is_dir():
            return [f"tasks: {folder} is not a folder"]
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=_TMP, suffix=".probe"):
                pass
        except OSError as exc:
            return [f"tasks: cannot write into {folder}: {exc.strerror}"]
        return []
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return [f"tasks: cannot create {folder}: {parent} is not a writable folder"]
    return []


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None

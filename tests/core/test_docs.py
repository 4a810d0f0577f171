"""Issue 11 items 7 and 8: the docs live in the repository and cannot drift from the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ME, World, event, vcard

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _make_docs():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_docs
    finally:
        sys.path.pop(0)
    return make_docs


def test_generated_docs_are_current() -> None:
    for path, text in _make_docs().generated().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run scripts/make_docs.py"


def test_config_doc_names_every_key() -> None:
    from syncd.config import SCHEMA

    text = (DOCS / "config.md").read_text()
    for section, options in SCHEMA.items():
        assert f"### `[{section}]`" in text
        for key, opt in options.items():
            assert f"| `{key}` |" in text and opt.help in text


def test_man_page_covers_every_command() -> None:
    page = (DOCS / "syncd.1").read_text()
    for command in ("sync", "run", "status", "people", "tasks", "auth", "check", "init", "completion"):
        assert f"'syncd {command}'" in page
    assert "allow\\-empty" in page and "\\-\\-version" in page


_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", ["README.md", *[f"docs/{p.name}" for p in sorted(DOCS.glob("*.md"))]])
def test_links_stay_inside_the_repository(doc: str) -> None:
    path = ROOT / doc
    for target in _LINK.findall(path.read_text()):
        assert "://" not in target and not target.startswith(("/", "mailto:")), (doc, target)
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), (doc, target)
        assert resolved.exists(), (doc, target)


def test_exit_codes_are_documented() -> None:
    from syncd import errors

    table = (DOCS / "cli.md").read_text()
    for name in dir(errors):
        if name.startswith("EX_") and name != "EX_OK":
            assert f"| {getattr(errors, name)} |" in table, name


def test_json_fields_are_documented(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add_event("a", event("a@t", "20260610T100000", "Coffee", ["bob@example.com", ME]))
    w.add_contact("bob", vcard("Bob Stone", "bob@example.com", groups="Friends"))
    w.run("--backfill")
    doc = (DOCS / "json.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", doc))
    status = json.loads(w.run("status", "--json").stdout)
    fields = {*w.people()["Bob Stone"], *w.tasks_json()[0], *status, *status["accounts"][0]}
    assert fields - documented == set()


def test_khal_claim_matches_what_khal_shows() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "khal can read" not in readme and "todoman and khal can read" not in readme
    assert "khal does" in readme and "not show VTODOs" in readme


# -- item 8: service docs that match reality ---------------------------------------------------


def test_backfill_unit_starts_the_daemon_again() -> None:
    text = (ROOT / "systemd" / "syncd-backfill.service").read_text()
    settings = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert ["Conflicts", "syncd.service"] in settings
    assert ["OnSuccess", "syncd.service"] in settings and ["OnFailure", "syncd.service"] in settings


def _snippet(after: str) -> str:
    """The first heredoc body after ``after`` in docs/service.md."""
    text = (DOCS / "service.md").read_text()
    rest = text[text.index(after):]
    m = re.search(r"<<'CONF'\n(.*?)\nCONF\n", rest, re.S)
    assert m, after
    return m.group(1)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_documented_keyring_drop_in_is_a_valid_unit(tmp_path: Path) -> None:
    drop_in = _snippet("### Without a desktop session")
    assert "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring" in drop_in
    stub = tmp_path / "syncd"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = (ROOT / "systemd" / "syncd.service").read_text().replace("%h/.local/bin/syncd", str(stub))
    merged = tmp_path / "syncd.service"
    merged.write_text(unit + "\n" + drop_in + "\n")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(merged)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == ""


def test_headless_extra_brings_a_file_keyring() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("keyrings.alt") for d in project["optional-dependencies"]["headless"])
    text = (DOCS / "service.md").read_text()
    assert "pipx inject syncd keyrings.alt" in text and "LoadCredential=home:" in text
    assert "ProtectHome=read-only" in text and "ReadWritePaths=" in text

"""systemd/: every unit passes `systemd-analyze verify` silently; the system unit is hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")

NAMES = ["syncd.service", "syncd-system.service", "syncd-backfill.service"]


def staged(tmp_path: Path, name: str) -> Path:
    """The unit with its ExecStart binary pointed at a stub (verify checks it exists)."""
    stub = tmp_path / "bin" / "syncd"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = (UNITS / name).read_text()
    assert re.search(r"^ExecStart=(%h/\.local/bin|/usr/local/bin)/syncd ", text, re.M), name
    text = text.replace("%h/.local/bin/syncd", str(stub)).replace("/usr/local/bin/syncd", str(stub))
    out = tmp_path / name
    out.write_text(text)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_verify_is_silent(tmp_path: Path, name: str) -> None:
    assert ANALYZE is not None
    unit = staged(tmp_path, name)
    proc = subprocess.run([ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout + proc.stderr == ""


def test_system_unit_exposure_at_most_2(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = staged(tmp_path, "syncd-system.service")
    proc = subprocess.run([ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 2.0, proc.stdout


def test_user_unit_contract() -> None:
    text = (UNITS / "syncd.service").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert set(settings["RestartPreventExitStatus"].split()) == {"2", "78", "69"}
    assert "WatchdogSec" in settings
    assert "ProtectHome" not in settings  # it would hide /run/user and the keyring
    assert settings["ExecReload"].endswith("-HUP $MAINPID")

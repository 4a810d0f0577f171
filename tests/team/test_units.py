"""systemd/syncd-team-worker@.service: verifies silently, hardened to 2.0 or better, and
gets its secrets as credentials only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "syncd-team-worker@.service"
ANALYZE = shutil.which("systemd-analyze")


def _instance(tmp_path: Path) -> Path:
    """An instance of the template with ExecStart's binary pointed at a stub."""
    stub = tmp_path / "bin" / "syncd"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert re.search(r"^ExecStart=/usr/local/bin/syncd .* team worker", text, re.M)
    out = tmp_path / "syncd-team-worker@1.service"
    out.write_text(text.replace("/usr/local/bin/syncd", str(stub)))
    return out


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_verify_is_silent_and_exposure_at_most_2(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = _instance(tmp_path)
    proc = subprocess.run([ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == ""
    proc = subprocess.run([ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True,
                          timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 2.0, proc.stdout


def test_secrets_come_as_credentials() -> None:
    lines = [line for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#")]
    creds = [line.split("=", 1)[1].split(":")[0] for line in lines if line.startswith("LoadCredential=")]
    assert creds == ["team-key", "pgpass"]
    assert "Environment=PGPASSFILE=%d/pgpass" in lines
    assert not [line for line in lines if re.search(r"password|postgresql://", line, re.I)]
    settings = dict(line.split("=", 1) for line in lines)
    assert set(settings["RestartPreventExitStatus"].split()) == {"2", "78", "69"}

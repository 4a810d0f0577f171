"""Issue 11 item 9: what the wheel installs, and that a non-editable install runs.

The wheel is built from a copy of the files git would commit, so the test sees what a
user of ``pipx install .`` gets.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        path = ROOT / name
        if not path.exists() and not path.is_symlink():
            continue  # deleted in the work tree
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target.symlink_to(path.readlink())
        else:
            target.write_bytes(path.read_bytes())
    out = tmp / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [built] = out.glob("syncd-*.whl")
    return built


def _dist_file(zf: zipfile.ZipFile, name: str) -> str:
    [path] = [n for n in zf.namelist() if n.endswith(".dist-info/" + name)]
    return zf.read(path).decode()


def test_memory_connector_is_not_offered(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        eps = _dist_file(zf, "entry_points.txt")
    assert "[syncd.connectors]" in eps
    names = {line.split("=")[0].strip() for line in eps.split("[syncd.connectors]")[1].splitlines() if "=" in line}
    assert names == {"vdir", "caldav", "google"}


def test_example_config_ships_inside_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("syncd/config.example.toml").decode() == (ROOT / "config.example.toml").read_text()


def test_no_generic_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/")[0] for n in zf.namelist() if "/" in n and not n.split("/")[0].endswith((".dist-info", ".data"))}
        assert tops == {"syncd", "syncd_connectors"}
        modules = {p.relative_to(ROOT / "syncd_connectors").as_posix() for p in (ROOT / "syncd_connectors").rglob("*.py")}
        assert {f"syncd_connectors/{m}" for m in modules} <= set(zf.namelist())
        assert "syncd_connectors.vdir:VdirConnector" in _dist_file(zf, "entry_points.txt")


def test_man_page_is_installed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        [page] = [n for n in zf.namelist() if n.endswith(".data/data/share/man/man1/syncd.1")]
        assert zf.read(page).decode() == (ROOT / "docs" / "syncd.1").read_text()

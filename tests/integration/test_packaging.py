"""
The wheel installs the plugin where twistd looks for it, and nothing that
would break Twisted's shared plugin package.
"""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300)
    (built,) = out.glob("llmedge-*.whl")
    return built


def test_wheel_ships_the_plugin_without_an_init(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/llmedge_plugin.py" in names
    assert "twisted/plugins/__init__.py" not in names
    assert "twisted/__init__.py" not in names
    assert "llmedge/tap.py" in names


def test_wheel_ships_every_module_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "llmedge").rglob("*.py")}
    assert modules - names == set()


def test_twistd_finds_the_plugin_of_an_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300)
    # -S: no site-packages processing, so the checkout's editable path is not
    # seen; only the wheel's files and the dependencies are importable.
    dependencies = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [sys.executable, "-S", "-c", "from twisted.scripts.twistd import run; run()",
         "llmedge", "--help"],
        env={"PYTHONPATH": f"{target}:{dependencies}"}, cwd=tmp_path,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--listen" in result.stdout

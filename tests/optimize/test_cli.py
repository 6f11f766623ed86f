"""Issue 15 item 6: `python -m mpskernels`, `--version`, and one line (not a traceback) for what is missing."""

import subprocess
import sys

import mpskernels
from mpskernels import cli


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "mpskernels", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"mpskernels {mpskernels.__version__}", out.stderr


def test_a_missing_optional_package_is_one_line_naming_its_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich now fails as if it were not installed
    monkeypatch.setattr(cli, "_demo", lambda args: __import__("rich"))
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "mpskernels demo: needs the optional package 'rich': pip install 'mpskernels[bench]'"


def test_a_missing_compiler_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("MPSKERNELS_CXX", raising=False)
    assert cli.main(["emulate", "x.metal"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "C++17 compiler" in err and "install clang or g++" in err

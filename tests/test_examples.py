"""The README's main job and the scripts in examples/ run end to end (tiny configs)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_demo_optimizes_a_decoder_and_checks_it():
    out = run("-m", "mpskernels.cli", "demo")
    assert "demo passed" in out
    assert "rms_norm" in out and "swiglu" in out and "0 rolled back" in out
    assert "logits match the original model: True" in out


def test_custom_module_example():
    out = run("examples/custom_module.py")
    assert "MyNorm  swapped  rms_norm" in out and "Swish   swapped  silu" in out and "Cube    skipped" in out


def test_compile_backend_example():
    out = run("examples/compile_backend.py")
    difference = float(out.strip().rsplit(" ", 1)[-1])
    assert difference < 1e-4


def test_transformers_example():
    pytest.importorskip("transformers")
    out = run("examples/optimize_transformers.py", "--tiny")
    assert "7 swapped, 0 skipped, 0 rolled back" in out

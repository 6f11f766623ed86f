"""examples/quantize_llm.py runs end to end (tiny config): report, generation comparison, kernels on the emulator."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quantize_llm_example():
    pytest.importorskip("transformers")
    proc = subprocess.run([sys.executable, "examples/quantize_llm.py", "--tiny", "--bits", "8", "--tokens", "12"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "14 layers at 8 bits, group size 64; 1 kept" in out
    assert "greedy tokens identical to the unquantised model: 12 of 12" in out
    emulated = out.rsplit("prefill ", 1)[1]
    assert float(emulated.split(",")[0]) < 1e-4 and float(emulated.split("decode step ")[1].split()[0]) < 1e-4

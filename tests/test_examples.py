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
    # with apply_rotary_pos_emb routed in both attention blocks, and both decoder layers' residual adds fused with
    # the norms after them (add_rms_norm)
    assert "11 swapped, 0 skipped, 0 rolled back" in out


def test_emulate_command_lists_kernels_roles_and_constants():
    out = run("-m", "mpskernels.cli", "emulate", "metal/rms_norm.metal")
    assert "function constant 0: bool has_weight" in out
    assert "rms_norm_float16" in out and "add_rms_norm_bfloat16" in out
    assert "buffer(1)" in out and "if has_weight" in out and "builtin thread_position_in_threadgroup" in out


def test_emulate_command_reports_compile_errors_with_the_metal_line(tmp_path):
    bad = tmp_path / "bad.metal"
    bad.write_text("#include <metal_stdlib>\nkernel void k(device float* y [[buffer(0)]]) {\n  y[0] = nope;\n}\n")
    proc = subprocess.run([sys.executable, "-m", "mpskernels.cli", "emulate", str(bad)], capture_output=True,
                          text=True)
    assert proc.returncode == 1
    assert f"{bad}:3" in proc.stderr and "nope" in proc.stderr

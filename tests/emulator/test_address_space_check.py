"""The clang address-space check (mpskernels.msl.address_spaces): every shipped kernel and every conformance file
passes it; each deliberately wrong kernel in msl/wrong_address_spaces/ fails at its `.metal` line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mpskernels._paths import metal_dir
from mpskernels.msl import MSLCompileError
from mpskernels.msl.address_spaces import check_address_spaces, clang

pytestmark = pytest.mark.skipif(clang() is None, reason="clang++ is not installed (apt-get install clang; CI has it)")

MSL = Path(__file__).parent / "msl"
WRONG = MSL / "wrong_address_spaces"
# Conformance files the check cannot read: layout.metal keeps metal::array and matrices (class types in the check
# header) in constant memory, and clang calls no member function on an object outside the default address space.
# The stdlib_* files exercise <metal_stdlib> internals (__metal_* intrinsics, uniform, os_log, swizzle writes,
# user additions to namespace metal) that the declarations-only check header does not declare.
CANNOT_CHECK = {"layout.metal", "stdlib_internals.metal", "stdlib_overloads.metal", "stdlib_vectors.metal"}


def marked_lines(path: Path) -> list[int]:
    return [n for n, text in enumerate(path.read_text().splitlines(), 1) if "// WRONG" in text]


def errors_of(path: Path) -> list[str]:
    with pytest.raises(MSLCompileError) as info:
        check_address_spaces(path)
    return [str(d) for d in info.value.diagnostics]


@pytest.mark.parametrize("path", sorted(metal_dir().glob("*.metal")), ids=lambda p: p.name)
def test_every_shipped_kernel_passes(path):
    check_address_spaces(path)


@pytest.mark.parametrize("path", sorted(p for p in MSL.glob("*.metal") if p.name not in CANNOT_CHECK),
                         ids=lambda p: p.name)
def test_every_conformance_file_passes(path):
    check_address_spaces(path)


@pytest.mark.parametrize("name, pattern", [
    ("device_to_threadgroup", r"assigning 'device float \*' to 'threadgroup float \*' changes address space"),
    ("threadgroup_to_device", r"cannot initialize a variable of type 'device float \*' with an lvalue of type "
                              r"'threadgroup float\[32\]'"),
    ("device_to_thread", r"cannot pass pointer to address space 'device' as a pointer to address space 'thread'"),
    ("write_through_constant", r"read-only variable is not assignable"),
    ("threadgroup_to_device_parameter", r"no matching function for call to 'fill'; .*no known conversion from "
                                        r"'threadgroup float\[32\]' to 'device float \*'"),
])  # fmt: skip
def test_each_wrong_kernel_fails_at_its_line(name, pattern):
    path = WRONG / f"{name}.metal"
    errors = errors_of(path)
    wanted = {f"{name}.metal:{line}:" for line in marked_lines(path)}
    found = {m.group(0) for e in errors for m in [re.search(rf"{name}\.metal:\d+:", e)] if m}
    assert wanted and wanted == found, errors
    assert any(re.search(pattern, e) for e in errors), errors


def test_writes_through_a_constant_reference_fail_too():
    errors = errors_of(WRONG / "write_through_constant.metal")
    assert any(re.search(r"write_through_constant\.metal:13:\d+: .*cannot assign to variable 'p' with "
                         r"const-qualified type 'constant Params const &'", e) for e in errors), errors


def test_c_style_casts_across_address_spaces_slip_through():
    """A documented miss: clang accepts an explicit cast between address spaces, so this check does too."""
    check_address_spaces(WRONG / "c_style_cast.metal")


def test_the_emulator_runs_what_the_check_rejects():
    """Why the check exists: g++ with the shim erases address spaces and compiles the wrong kernel."""
    from mpskernels.emulator import compile_file

    lib = compile_file(WRONG / "threadgroup_to_device.metal")
    assert "threadgroup_to_device" in lib.kernels


def test_cli_reports_the_line_and_fails():
    proc = subprocess.run([sys.executable, "-m", "mpskernels.cli", "emulate", "--check-address-spaces",
                           str(WRONG / "device_to_threadgroup.metal")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert re.search(r"device_to_threadgroup\.metal:8:\d+: address-space check", proc.stdout + proc.stderr)

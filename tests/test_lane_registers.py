"""The lane's register report (src/mpskernels/cuda/registers.py): parsing ptxas, and the shipped kernels' footprint."""

from __future__ import annotations

import pytest

from mpskernels.cuda import nvrtc
from mpskernels.cuda.registers import (Resources, kernel_resources, named_specialisation, parse_ptxas_log, ptxas,
                                       specialisations)

LOG = """ptxas info    : Compiling entry function 'mtl_entry_1' for 'sm_90'
ptxas info    : Function properties for mtl_entry_1
    72 bytes stack frame, 232 bytes spill stores, 144 bytes spill loads
ptxas info    : Used 64 registers, used 0 barriers, 72 bytes cumulative stack size
ptxas info    : Compiling entry function 'mtl_entry_0' for 'sm_90'
ptxas info    : Function properties for mtl_entry_0
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 52 registers, used 1 barriers
"""


def test_parse_ptxas_log_maps_symbols_and_frames():
    got = parse_ptxas_log(LOG, {"mtl_entry_0": "rms_norm_float32", "mtl_entry_1": "rms_norm_float16"}, ())
    assert got == [Resources("rms_norm_float16", (), 64, 72, 232), Resources("rms_norm_float32", (), 52, 0, 0)]
    assert not got[0].in_registers and got[1].in_registers


def test_specialisations_cover_every_boolean_constant():
    specs = specialisations("attention.metal")
    assert len(specs) == 8 and (("decode_short_tiles", True), ("has_bool_mask", True), ("has_mask", False)) in specs
    assert specialisations("kv_cache.metal") == [()]


def test_named_specialisation_sets_the_named_constants_and_clears_the_others():
    assert named_specialisation("attention.metal", ["decode_short_tiles"]) == (
        ("decode_short_tiles", True), ("has_bool_mask", False), ("has_mask", False))
    assert named_specialisation("kv_cache.metal", []) == ()
    with pytest.raises(ValueError, match="attention.metal has no boolean function constant short_tiles"):
        named_specialisation("attention.metal", ["short_tiles"])


needs_tools = pytest.mark.skipif(ptxas() is None or nvrtc.library() is None, reason="needs NVRTC and ptxas")


@needs_tools
def test_activations_hold_everything_in_registers():
    resources = kernel_resources("activations.metal")
    assert {r.kernel for r in resources} >= {"silu_float32", "gelu_bfloat16", "swiglu_float16"}
    assert all(r.in_registers for r in resources), [r for r in resources if not r.in_registers]

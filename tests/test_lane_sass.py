"""The lane's loop report (src/mpskernels/cuda/sass.py): parsing nvdisasm listings, and one shipped kernel's loop."""

from __future__ import annotations

import pytest

from mpskernels.cuda import nvrtc
from mpskernels.cuda.registers import ptxas
from mpskernels.cuda.sass import Loop, kernel_loops, loops, nvdisasm

# A rolled loop with one 16-byte load consumed at once, a forward branch out of it (not a loop), and a second loop
# whose body holds a guarded 2-byte load and a store.
LISTING = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
        /*0020*/                   FFMA R8, R4, R5, R8 ;
        /*0030*/              @P0 BRA `(.L_x_1) ;
        /*0040*/                   IADD3 R2, R2, 0x200, RZ ;
        /*0050*/              @!P1 BRA `(.L_x_0) ;
.L_x_1:
.L_x_2:
        /*0060*/              @!P2 LDG.E.U16 R9, desc[UR4][R6.64] ;
        /*0070*/                   STG.E desc[UR4][R10.64], R9 ;
        /*0080*/                   BRA.DIV UR4, `(.L_x_2) ;
        /*0090*/                   EXIT ;
"""


def test_loops_are_backward_branches_with_their_loads_by_width():
    assert loops(LISTING) == [
        Loop(0x10, 0x50, 5, {"LDG.E.128": 1}, 0),
        Loop(0x60, 0x80, 3, {"LDG.E.U16": 1}, 1),
    ]
    assert loops(LISTING)[0].describe() == "0x00010-0x00050:     5 instructions, 1 LDG.E.128, 0 stores"


needs_tools = pytest.mark.skipif(ptxas() is None or nvdisasm() is None or nvrtc.library() is None,
                                 reason="needs NVRTC, ptxas and nvdisasm")


@needs_tools
def test_qmv_loads_its_rows_words_together():
    # quantized.metal's qmv loads the packed words of its QMV_ROWS = 4 weight rows before using any: one loop over K
    # whose body issues at least 4 16-byte loads (x's chunks add more; the rows' bf16 scales and biases are 2-byte).
    (k_loop,) = [loop for loop in kernel_loops("quantized.metal", "quantized_qmv_4bit_bfloat16",
                                               (("has_bias", False), ("split_k", False))) if loop.loads]
    assert k_loop.loads.get("LDG.E.128", 0) >= 4


@needs_tools
def test_decode_attention_issues_a_batch_of_key_and_value_loads():
    # attention.metal's decode kernel loads DECODE_LOADS = 4 steps of K (and of V) before using the first, so every
    # loop that loads K or V chunks issues at least 4 16-byte loads. The loop it replaced issued one per iteration
    # (one K load in flight per SIMD group: measured 1.11-1.95x slower in fp32 on the lane, metal/attention.metal).
    specialisation = (("decode_short_tiles", False), ("has_bool_mask", False), ("has_mask", False))
    loads = [loop.loads["LDG.E.128"] for loop in kernel_loops("attention.metal", "attention_decode_split_d128_float32",
                                                               specialisation) if "LDG.E.128" in loop.loads]
    assert loads and min(loads) >= 4, loads

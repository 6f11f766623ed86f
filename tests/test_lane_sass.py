"""The lane's loop report (src/mpskernels/cuda/sass.py): parsing nvdisasm listings, and one shipped kernel's loop."""

from __future__ import annotations

import pytest

from mpskernels.cuda import nvrtc
from mpskernels.cuda.registers import ptxas
from mpskernels.cuda.sass import (Loop, function_sizes, kernel_code_sizes, kernel_loops, loads_before_first_use, loops,
                                  nvdisasm)

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
        Loop(0x10, 0x50, 5, {"LDG.E.128": 1}, 0, 1),
        Loop(0x60, 0x80, 3, {"LDG.E.U16": 1}, 1, 1),
    ]
    assert loops(LISTING)[0].describe() == ("0x00010-0x00050:     5 instructions, 1 LDG.E.128, 0 stores, "
                                            "1 loads before the first use")


def test_loads_before_the_first_use_follow_the_first_loads_registers():
    batch = [
        "LDG.E R3, desc[UR4][R8.64]",  # the first load: R3
        "@!P0 LDG.E.128 R12, desc[UR4][R10.64]",  # R12-R15, predicated: still issued before any use
        "IADD3 R8, P1, R8, 0x4, RZ",  # writes R8 (an address register), reads no loaded value
        "LDG.E.64 R16, desc[UR4][R8.64]",
        "FADD R5, R15, R4",  # reads the second load's R15: not the first's
        "FMUL R4, R3, R3",  # the first use of R3
        "LDG.E R20, desc[UR4][R8.64]",
    ]
    assert loads_before_first_use(batch) == 3
    assert loads_before_first_use(["LDG.E.128 R4, desc[UR4][R2.64]", "STG.E desc[UR4][R6.64], R7"]) == 1
    assert loads_before_first_use(["LDG.E.128 R4, desc[UR4][R2.64]", "LDG.E R9, desc[UR4][R2.64+0x10]"]) == 2
    assert loads_before_first_use(["IADD3 R2, R2, 0x200, RZ"]) == 0


def test_function_sizes_count_each_sections_instructions():
    listing = ".text.mtl_entry_0_copy_float32:\n" + LISTING + ".text._Z6helperv:\n" + "        /*0000*/  RET.ABS R20 ;\n"
    assert function_sizes(listing) == {"mtl_entry_0_copy_float32": 10, "_Z6helperv": 1}
    assert function_sizes(LISTING) == {}  # instructions outside any section are nobody's


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
def test_decode_attention_loads_in_batches():
    """Both decode kernels, from one compile of attention.metal (NVRTC takes 40 s on it):
    - the split kernel loads DECODE_LOADS = 4 steps of K (and of V) before using the first, so every loop that loads
      K or V chunks issues at least 4 16-byte loads. The loop it replaced issued one per iteration (one K load in
      flight per SIMD group: measured 1.11-1.95x slower in fp32 on the lane, metal/attention.metal);
    - the merge loads MERGE_LOADS = 4 blocks' m and O before the first exp(m - m_all): in every loop that loads O
      rows (16-byte loads) at least 4 loads go out before the first one's value is used. The loop it replaced used
      each block's m and O right after loading them (2 loads out at a time; measured 1.02-1.06x slower at batch 1)."""
    specialisation = (("decode_short_tiles", False), ("has_bool_mask", False), ("has_mask", False))
    split = kernel_loops("attention.metal", "attention_decode_split_d128_float32", specialisation)
    chunk_loads = [loop.loads["LDG.E.128"] for loop in split if "LDG.E.128" in loop.loads]
    assert chunk_loads and min(chunk_loads) >= 4, chunk_loads
    merge = kernel_loops("attention.metal", "attention_decode_merge_d128_float32", specialisation)
    before_use = [loop.loads_before_use for loop in merge if "LDG.E.128" in loop.loads]
    assert before_use and min(before_use) >= 4, before_use


@needs_tools
def test_code_sizes_name_every_kernel_of_the_file():
    sizes = kernel_code_sizes("rms_norm.metal", (("has_weight", True), ("has_weight_offset", False)))
    assert set(sizes) == {f"{op}_{dtype}" for op in ("rms_norm", "add_rms_norm")
                          for dtype in ("float32", "float16", "bfloat16")}
    assert min(sizes.values()) > 100, sizes  # a row norm's loads, reductions and stores: not an empty section

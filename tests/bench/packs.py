"""Small kernel packs for the harness tests: an elementwise SiLU kernel for benches/problems/level1/09_SiLU, and a
wrong one (it copies its input)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mpskernels.packs import KernelPack, class_key, parse_declaration
from mpskernels.problem import Problem

SUITE = Path(__file__).resolve().parents[2] / "benches" / "problems"
SILU_PROBLEM = SUITE / "level1" / "09_SiLU.py"

SOURCE = """#include <metal_stdlib>
using namespace metal;

template <typename T>
kernel void pack_silu(device const T* x [[buffer(0)]],
                      device T* y [[buffer(1)]],
                      constant uint& n [[buffer(2)]],
                      uint i [[thread_position_in_grid]]) {
    if (i < n) {
        float v = float(x[i]);
        y[i] = T(%s);
    }
}

template [[host_name("pack_silu_float32")]] kernel void pack_silu<float>(
    device const float*, device float*, constant uint&, uint);
"""
RIGHT, WRONG = "v / (1.0f + metal::precise::exp(-v))", "v"

DECLARATION = {
    "inputs": ["x"],
    "parameters": [],
    "attributes": [],
    "dtypes": ["float32"],
    "outputs": {"out": {"shape": "x.shape", "dtype": "x.dtype"}},
    "launches": [{"kernel": "pack_silu_{dtype}", "buffers": ["x", "out", {"uint": "x.numel()"}],
                  "threads": ["x.numel()"], "group_size": [64]}],
    "returns": ["out"],
}


def silu_pack(folder: Path, problem: Problem, wrong: bool = False, problem_name: str | None = None,
              problem_source: str | None = None) -> Path:
    """Saves a pack for `problem` (its Model class) into `folder` and returns the folder."""
    model = problem.at().namespace["Model"]
    source = problem.source if problem_source is None else problem_source
    KernelPack("silu", SOURCE % (WRONG if wrong else RIGHT), parse_declaration(DECLARATION), class_key(model),
               problem_name=problem.name if problem_name is None else problem_name,
               problem_sha256=hashlib.sha256(source.encode()).hexdigest(),
               provenance={"author": "tests/bench"}).save(folder)
    return folder

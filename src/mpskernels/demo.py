"""`mpskernels demo`: run a shipped Metal kernel on the CPU emulator and check it against PyTorch in float64.

On Linux this is the whole path a kernel takes before it may ship: the exact `.metal` file, compiled against the
emulator's metal_stdlib, run with real threadgroup and SIMD-group semantics, compared at the dtype's tolerance.
"""

from __future__ import annotations

import time

import torch

from ._paths import metal_dir
from .emulator import compile_file
from .tolerances import compare

HOST_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    x64 = x.to(torch.float64)
    y = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps)
    return y * weight.to(torch.float64) if weight is not None else y


def run_demo(verbose: bool = False) -> int:
    start = time.perf_counter()
    lib = compile_file(metal_dir() / "rms_norm.metal")
    print(f"compiled metal/rms_norm.metal for the CPU emulator: {', '.join(lib.kernels)}")
    gen = torch.Generator().manual_seed(0)
    failures = 0
    print(f"{'kernel':<20} {'rows x cols':>12} {'weight':>7} {'threads':>8}  result")
    for dtype, name in HOST_DTYPE_NAMES.items():
        for rows, cols, group in ((3, 31, 32), (2, 33, 64), (4, 1000, 256), (1, 4099, 1024)):
            for with_weight in (False, True):
                x = torch.randn(rows, cols, generator=gen).to(dtype)
                w = (torch.rand(cols, generator=gen) + 0.5).to(dtype) if with_weight else None
                out = torch.full_like(x, float("nan"))
                lib.dispatch(f"rms_norm_{name}", x, w, out, 1e-5, cols, threads=(rows * group,),
                             group_size=(group,), constants={"has_weight": with_weight})
                result = compare(out, rms_norm_reference(x, w, 1e-5))
                failures += not result.ok
                print(f"rms_norm_{name:<11} {rows:>5} x {cols:<5} {str(with_weight):>7} {group:>8}  {result}")
    took = time.perf_counter() - start
    print(f"{'all checks passed' if not failures else f'{failures} check(s) FAILED'} in {took:.1f}s "
          f"(tolerances by dtype: mpskernels.tolerances)")
    return 1 if failures else 0

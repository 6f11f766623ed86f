"""What every MLX anchor op shares: MLX's dtype names and limits, its dtype and layout checks, and (from the
anchors' launch module) one launch path for both backends and the small host-side arrays MLX binds."""

from __future__ import annotations

import torch

from ..launch import in_order, int32s, int64s, launcher, packed, span, threadgroups  # noqa: F401 (re-exported)

# MLX's `type_to_name` (kernel names of softmax, unary, binary, gemv, steel attention) and `get_type_string`
# (sdpa_vector, quantized): the two spellings its host code builds kernel names from.
TYPE_NAME = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
TYPE_STRING = {torch.float32: "float", torch.float16: "float16_t", torch.bfloat16: "bfloat16_t"}
FLOATS = (torch.float32, torch.float16, torch.bfloat16)

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1


def check_dtype(op: str, *tensors: torch.Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors:
        if t.dtype != dtype:
            raise TypeError(f"{op}: every input must have one dtype, got {dtype} and {t.dtype}")
    if dtype not in TYPE_NAME:
        raise TypeError(f"{op}: MLX instantiates this kernel for float32, float16 and bfloat16, not {dtype}")
    return dtype


def row_contiguous(op: str, *tensors: torch.Tensor) -> None:
    """MLX's host copies inputs that are not row-contiguous before it dispatches (contiguous_copy_gpu); the
    anchor ops take them contiguous instead, so a copy never hides inside a timed launch."""
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError(f"{op}: inputs must be contiguous (MLX's host would copy this one first)")

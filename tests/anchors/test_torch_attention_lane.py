"""PyTorch's MPS attention kernels through the NVIDIA lane: where a GPU is, the anchor ops prepared for CUDA tensors (no
copies) match float64. (That the headers translate and compile with NVRTC is tests/nvidia_lane/test_nvrtc_anchors.py.)"""

import pytest
import torch

from mpskernels.anchors import torch_mps as tm

from .test_torch_attention import check, prefill_query, qkv, randn

try:
    import cupy  # noqa: F401

    HAVE_GPU = torch.cuda.is_available()
except ImportError:
    HAVE_GPU = False
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA device")


class OnGpu:
    """The op run on CUDA copies of the inputs (prepared once, launched, synchronised), its output brought back."""

    def __init__(self, op):
        self.op, self.name = op, op.name

    def __call__(self, *inputs, **params):
        on_gpu = [None if t is None else t.cuda() for t in inputs]
        prepared = self.op.prepare(*on_gpu, backend="cuda", **params)
        prepared.launch()
        torch.cuda.synchronize()
        return prepared.out.cpu()


@needs_gpu
@pytest.mark.parametrize("op, kv_len, dtype, mask, causal", [
    (tm.SDPA_VECTOR, 300, torch.float16, torch.bool, False),
    (tm.SDPA_VECTOR, 300, torch.bfloat16, None, True),
    (tm.SDPA_VECTOR_2PASS, 4000, torch.bfloat16, None, False),
    (tm.SDPA_VECTOR_2PASS, 1100, torch.float32, torch.bool, False),
    (tm.PREFILL_ATTENTION, 70, torch.float16, None, True),
    (tm.PREFILL_ATTENTION, 70, torch.bfloat16, torch.bool, False),
])
def test_the_ops_on_the_lane(op, kv_len, dtype, mask, causal):
    q_len = 40 if op is tm.PREFILL_ATTENTION else 2
    q, k, v = qkv(2, 8, 2, q_len, kv_len, 128, dtype, seed=21)
    m = None if mask is None else randn(2, 1, q_len, kv_len, seed=22) > -1.0
    if m is not None:
        m[..., 0] = True
    check(OnGpu(op), q, k, v, m, causal, as_read=prefill_query if op is tm.PREFILL_ATTENTION else None)

"""The anchors' own Metal kernels (MLX's and PyTorch's, unmodified) on an NVIDIA GPU through the CUDA lane, with
their own host logic (mpskernels.anchors), against float64 computations of what each op means. Skipped without
CuPy and a CUDA device; benches/anchor_lane.py times the same launches.

Each case prepares once and launches twice: the second launch must give the same result (the prepared launch is
what the lane times, so it must be re-runnable without re-binding)."""

import math

import pytest
import torch
import torch.nn.functional as F

from mpskernels.anchors import REGISTRY
from mpskernels.tolerances import compare, tolerance_for

try:
    import cupy  # noqa: F401

    HAVE_GPU = torch.cuda.is_available()
except ImportError:
    HAVE_GPU = False

pytestmark = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA device")

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def randn(*shape, seed, dtype):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype).cuda()


def run_twice(name, *inputs, **params):
    """The op's output from its first launch, after checking a second launch of the same preparation agrees."""
    prepared = REGISTRY[name].prepare(*inputs, backend="cuda", **params)
    prepared.launch()
    torch.cuda.synchronize()
    first = prepared.out.clone()
    prepared.launch()
    torch.cuda.synchronize()
    assert torch.equal(first, prepared.out), f"{name}: a second launch gave another result"
    return first


def check(name, got, want, dtype, slack=None):
    result = compare(got.cpu(), want.cpu(), dtype, slack=None if slack is None else slack.cpu())
    assert result.ok, f"{name} ({dtype}): {result}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cols", [7, 1024, 5000])  # block and looped kernels, a tail
def test_mlx_softmax_family(dtype, cols):
    x = randn(4, cols, seed=cols, dtype=dtype)
    want = torch.softmax(x.double(), -1)
    check("mlx.softmax", run_twice("mlx.softmax", x, precise=False), want, dtype)
    check("mlx.softmax precise", run_twice("mlx.softmax", x, precise=True), want, dtype)
    check("mlx.logsumexp", run_twice("mlx.logsumexp", x).reshape(4, 1),
          torch.logsumexp(x.double(), -1, keepdim=True), dtype)
    check("mlx.log_softmax", run_twice("mlx.log_softmax", x), torch.log_softmax(x.double(), -1), dtype)


UNARY = {"mlx.exp": torch.exp, "mlx.sigmoid": torch.sigmoid, "mlx.erf": torch.erf}
BINARY = {"mlx.add": torch.add, "mlx.subtract": torch.sub, "mlx.multiply": torch.mul, "mlx.divide": torch.div}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_mlx_unary(name, dtype):
    x = randn(3, 1000, seed=1, dtype=dtype)
    check(name, run_twice(name, x), UNARY[name](x.double()), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((64, 300), (64, 300)), ((64, 300), (1, 300)), ((64, 300), (64, 1))],
                         ids=["same", "row", "column"])
def test_mlx_binary(name, dtype, shapes):
    a = randn(*shapes[0], seed=2, dtype=dtype)
    b = randn(*shapes[1], seed=3, dtype=dtype)
    if name == "mlx.divide":
        b = b.sign() * (b.abs() + 0.5)  # away from zero
    check(name, run_twice(name, a, b), BINARY[name](a.double(), b.double()), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mlx_activation_chains(dtype):
    x = randn(8, 700, seed=4, dtype=dtype)
    g = randn(8, 700, seed=5, dtype=dtype)
    xd, gd = x.double(), g.double()
    check("mlx.silu_chain", run_twice("mlx.silu_chain", x), xd * torch.sigmoid(xd), dtype)
    check("mlx.gelu_chain", run_twice("mlx.gelu_chain", x), xd * (1 + torch.erf(xd / math.sqrt(2))) / 2, dtype)
    check("mlx.swiglu_chain", run_twice("mlx.swiglu_chain", x, g), xd * torch.sigmoid(xd) * gd, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n, k", [(512, 4096), (4096, 512), (100, 300)])
def test_mlx_gemv(dtype, n, k):
    x = randn(1, k, seed=6, dtype=dtype)
    w = randn(n, k, seed=7, dtype=dtype) / math.sqrt(k)
    want = x.double() @ w.double().T
    slack = (x.double().abs() @ w.double().abs().T) * tolerance_for(dtype).rtol  # a k-term dot product
    check("mlx.gemv", run_twice("mlx.gemv", x, w), want, dtype, slack)
    wt = w.T.contiguous()  # (K, N): gemv_t's layout
    check("mlx.gemv_t", run_twice("mlx.gemv_t", x, wt), want, dtype, slack)


def attention_reference(q, k, v):
    """softmax(q k^T / sqrt(d)) v in float64, grouped heads sharing a key/value head."""
    q, k, v = q.double(), k.double(), v.double()
    group = q.size(-3) // k.size(-3)
    k, v = k.repeat_interleave(group, -3), v.repeat_interleave(group, -3)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.size(-1)), -1) @ v


def attention_slack(q, k, v, want):
    """torch's own SDPA error in the dtype, twice, plus the dtype's rtol times the output's RMS (the verifier's rule
    for attention anchors: tests/anchors/test_torch_attention.py)."""
    torch_out = F.scaled_dot_product_attention(q, k, v, enable_gqa=q.size(-3) != k.size(-3)).double()
    return 2 * (torch_out - want).abs() + tolerance_for(q.dtype).rtol * want.pow(2).mean().sqrt()


def qkv(heads, kv_heads, q_len, kv_len, dim, dtype, seed=10):
    return (randn(1, heads, q_len, dim, seed=seed, dtype=dtype), randn(1, kv_heads, kv_len, dim, seed=seed + 1,
                                                                       dtype=dtype),
            randn(1, kv_heads, kv_len, dim, seed=seed + 2, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["mlx.sdpa_vector", "mlx.sdpa_vector_2pass", "torch.sdpa_vector",
                                  "torch.sdpa_vector_2pass"])
@pytest.mark.parametrize("dim, kv_len", [(64, 300), (128, 4000)])
def test_decode_attention(name, dtype, dim, kv_len):
    q, k, v = qkv(32, 8, 1, kv_len, dim, dtype)
    want = attention_reference(q, k, v)
    check(name, run_twice(name, q, k, v), want, dtype, attention_slack(q, k, v, want))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["mlx.steel_attention", "torch.prefill_attention"])
@pytest.mark.parametrize("dim", [64, 128])
def test_prefill_attention(name, dtype, dim):
    q, k, v = qkv(8, 2, 100, 100, dim, dtype)
    want = attention_reference(q, k, v)
    check(name, run_twice(name, q, k, v), want, dtype, attention_slack(q, k, v, want))

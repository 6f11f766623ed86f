"""torch.compile(model, backend="mpskernels"): aten-level rewrites to mpskernels ops, Inductor for the rest,
eager fallback, first-call verification."""

import logging
import subprocess
import sys

import pytest
import torch
from torch import fx, nn

import mpskernels
import mpskernels.compile as backend_module


class LlamaStyleRMSNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(size) + 0.5)
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def block(dtype):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), LlamaStyleRMSNorm(8), nn.SiLU(), nn.RMSNorm(8), nn.GELU("tanh"),
                         nn.Mish(), nn.Hardswish(), nn.Linear(8, 4)).eval().to(dtype)


@pytest.fixture
def rewritten(monkeypatch):
    """The call targets of every graph handed to Inductor."""
    graphs = []
    real = backend_module._compile_rest

    def spy(gm, example_inputs):
        graphs.append([str(n.target) for n in gm.graph.nodes if n.op == "call_function"])
        return real(gm, example_inputs)

    monkeypatch.setattr(backend_module, "_compile_rest", spy)
    torch._dynamo.reset()
    yield graphs
    torch._dynamo.reset()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_written_out_and_module_norms_and_silu_become_mpskernels_ops(rewritten, dtype):
    model = block(dtype)
    x = torch.randn(3, 8).to(dtype)
    with torch.no_grad(), mpskernels.use_backend("emulator"):
        expected = model(x)
        got = torch.compile(model, backend="mpskernels")(x)
    (targets,) = rewritten
    assert targets.count("mpskernels.rms_norm.default") == 2
    assert targets.count("mpskernels.silu.default") == 1
    for op in ("gelu", "mish", "hardswish"):
        assert targets.count(f"mpskernels.{op}.default") == 1
    assert "aten.rsqrt.default" not in targets
    tol = 1e-5 if dtype == torch.float32 else 4e-3
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)


def test_norms_over_other_dimensions_are_left_alone(rewritten):
    class ColumnNorm(nn.Module):
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + 1e-5)

    x = torch.randn(4, 6)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(ColumnNorm(), backend="mpskernels")(x), ColumnNorm()(x))
    assert "mpskernels.rms_norm.default" not in rewritten[0]


def test_inductor_failure_falls_back_to_the_rewritten_graph_eagerly(monkeypatch, caplog):
    import torch._inductor.compile_fx as inductor

    def broken(*args, **kwargs):
        raise RuntimeError("simulated Inductor failure")

    monkeypatch.setattr(inductor, "compile_fx", broken)
    torch._dynamo.reset()
    model = block(torch.float32)
    x = torch.randn(2, 8)
    with torch.no_grad(), caplog.at_level(logging.WARNING, logger="mpskernels"):
        torch.testing.assert_close(torch.compile(model, backend="mpskernels")(x), model(x), rtol=1e-5, atol=1e-6)
    assert any("simulated Inductor failure" in r.getMessage() for r in caplog.records)


def test_first_call_verification_falls_back_to_eager_on_a_mismatch(monkeypatch, caplog):
    def wrong_rewrite(graph: fx.Graph) -> int:
        for node in graph.nodes:
            if node.target == torch.ops.aten.silu.default:
                node.target = torch.ops.aten.relu.default  # a deliberately wrong "kernel"
        return 1

    monkeypatch.setattr(backend_module, "REWRITES", [wrong_rewrite])
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(8, 8), nn.SiLU()).eval()
    x = torch.randn(4, 8)
    with torch.no_grad(), caplog.at_level(logging.WARNING, logger="mpskernels"):
        compiled = torch.compile(model, backend="mpskernels", options={"verify": True})
        for _ in range(2):
            torch.testing.assert_close(compiled(x), model(x))
    assert any("disagrees with eager" in r.getMessage() for r in caplog.records)
    torch._dynamo.reset()


def test_backend_is_found_through_its_entry_point_without_importing_mpskernels():
    code = (
        "import torch, sys\n"
        "f = torch.compile(lambda x: torch.nn.functional.silu(x) * 2, backend='mpskernels')\n"
        "x = torch.randn(5)\n"
        "assert torch.allclose(f(x), torch.nn.functional.silu(x) * 2)\n"
        "print('mpskernels' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_scaled_dot_product_attention_becomes_the_attention_kernel(rewritten):
    import torch.nn.functional as F

    def f(q, k, v, mask):
        causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        masked = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
        shorter = F.scaled_dot_product_attention(q, k[:, :, :5], v[:, :, :5], is_causal=True)  # top-left causal
        return causal, masked, shorter

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 9, 64, generator=g) for _ in range(3))
    mask = torch.randn(1, 1, 9, 9, generator=g)
    with mpskernels.use_backend("emulator"):
        got = torch.compile(f, backend="mpskernels")(q, k, v, mask)
    assert rewritten[0].count("mpskernels.attention.default") == 2  # not the non-square causal one
    for g_, w in zip(got, f(q, k, v, mask)):
        torch.testing.assert_close(g_, w, rtol=1e-5, atol=1e-5)


class ResidualNorms(nn.Module):
    """A transformer block's residual stream: each norm reads x + residual, which the block also keeps."""

    def __init__(self, size=32):
        super().__init__()
        self.rms = LlamaStyleRMSNorm(size)
        self.ln = nn.LayerNorm(size)
        self.proj = nn.Linear(size, size)

    def forward(self, x, residual):
        h = x + residual
        y = self.proj(self.rms(h))
        h2 = y + h
        return torch.softmax(self.ln(h2), dim=-1), torch.log_softmax(h2, -1), h2


def test_residual_adds_fuse_into_the_following_norm_and_softmax_is_rewritten(rewritten):
    model = ResidualNorms().eval()
    x, r = torch.randn(3, 5, 32), torch.randn(3, 5, 32)
    with torch.no_grad(), mpskernels.use_backend("emulator"):
        got = torch.compile(model, backend="mpskernels")(x, r)
        want = model(x, r)
    targets = rewritten[0]
    assert targets.count("mpskernels.add_rms_norm.default") == 1
    assert targets.count("mpskernels.add_layer_norm.default") == 1
    assert "mpskernels.softmax.default" in targets and "mpskernels.log_softmax.default" in targets
    assert "aten.add.Tensor" not in targets
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_group_norm_is_rewritten(rewritten):
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU()).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad(), mpskernels.use_backend("emulator"):
        got = torch.compile(model, backend="mpskernels")(x)
        want = model(x)
    assert "mpskernels.group_norm.default" in rewritten[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    """Hugging Face LLaMA's rotary embedding, as model code writes it."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def test_rotary_embedding_of_q_and_k_becomes_one_rope_launch(rewritten):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 4, 9, 64, generator=g), torch.randn(1, 2, 9, 64, generator=g)
    angles = torch.arange(9.0)[:, None] * 10000 ** (-torch.arange(0, 64, 2) / 64)
    angles = torch.cat((angles, angles), -1)[None]
    cos, sin = angles.cos(), angles.sin()
    with mpskernels.use_backend("emulator"):
        got = torch.compile(apply_rotary_pos_emb, backend="mpskernels")(q, k, cos, sin)
    assert rewritten[0].count("mpskernels.rope.default") == 1
    assert "aten.cat.default" not in rewritten[0]
    for g_, w in zip(got, apply_rotary_pos_emb(q, k, cos, sin)):
        torch.testing.assert_close(g_, w, rtol=1e-5, atol=1e-5)


def test_attention_written_out_with_matmul_and_softmax_becomes_the_attention_kernel(rewritten):
    import math

    def written_out(q, k, v, mask):
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1]) + mask
        return torch.matmul(torch.softmax(scores, dim=-1), v)

    def returns_weights(q, k, v, mask):
        weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * 0.125, dim=-1)
        return torch.matmul(weights, v), weights

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 64, generator=g) for _ in range(3))
    mask = torch.randn(2, 1, 9, 9, generator=g)
    with mpskernels.use_backend("emulator"):
        got = torch.compile(written_out, backend="mpskernels")(q, k, v, mask)
        got_pair = torch.compile(returns_weights, backend="mpskernels")(q, k, v, mask)
    assert rewritten[0].count("mpskernels.attention.default") == 1 and "aten.bmm.default" not in rewritten[0]
    assert "mpskernels.attention.default" not in rewritten[1]  # the weights are returned: left written out
    torch.testing.assert_close(got, written_out(q, k, v, mask), rtol=1e-5, atol=1e-5)
    for g_, w in zip(got_pair, returns_weights(q, k, v, mask)):
        torch.testing.assert_close(g_, w, rtol=1e-5, atol=1e-5)
